"""Raw (bronze) files on local disk or S3/MinIO, through one small API.

Keys are relative, ``/``-separated paths such as
``bronze/coincap/assets/ingest_date=2026-01-01/part.json``. Objects are immutable:
:meth:`RawStore.put` refuses to replace an existing key.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.fs as pafs

from lab_env.config import Settings, get_settings
from lab_env.errors import LabError


class ObjectExistsError(LabError):
    """A write would replace an object; bronze objects are never changed once written."""


@dataclass(frozen=True)
class RawStore:
    """A folder (local) or a bucket prefix (S3) holding raw files."""

    fs: pafs.FileSystem
    root: str
    display_root: str

    def _path(self, key: str) -> str:
        clean = posixpath.normpath(key.strip("/"))
        if clean.startswith("..") or clean == ".":
            raise LabError(f"Invalid raw key {key!r}.", "use a relative path inside the raw area.")
        return f"{self.root}/{clean}"

    def uri(self, key: str = "") -> str:
        """A URI for ``key`` that Spark, DuckDB and a learner can open."""
        return f"{self.display_root}/{key.strip('/')}" if key else self.display_root

    def exists(self, key: str) -> bool:
        return self.fs.get_file_info(self._path(key)).type == pafs.FileType.File

    def put(self, key: str, data: bytes) -> str:
        """Write a new object and return its URI; raise ObjectExistsError if the key is taken."""
        path = self._new_path(
            key, "write under a new key, or skip this write when the content is already stored."
        )
        # Write to a temporary name first, so a crash never leaves a half-written object.
        tmp = f"{path}.tmp-writing"
        with self.fs.open_output_stream(tmp) as out:
            out.write(data)
        self.fs.move(tmp, path)
        return self.uri(key)

    def _new_path(self, key: str, fix: str) -> str:
        """The path of a key no object holds yet, its folder made; ObjectExistsError if taken."""
        if self.exists(key):
            raise ObjectExistsError(
                f"Raw object {self.uri(key)} already exists and raw objects are immutable.", fix
            )
        path = self._path(key)
        self.fs.create_dir(posixpath.dirname(path), recursive=True)
        return path

    def get(self, key: str) -> bytes:
        try:
            with self.fs.open_input_stream(self._path(key)) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            raise LabError(
                f"No raw object at {self.uri(key)}.", "list what exists with RawStore.list()."
            ) from None

    def move(self, key: str, new_key: str) -> str:
        """Move an object to a key that is not taken (retiring it keeps it, under another name)."""
        if not self.exists(key):
            raise LabError(f"No raw object at {self.uri(key)}.",
                           "list what exists with lab bronze list.")
        path = self._new_path(new_key,
                              "it was moved there before: leave it, or choose another key.")
        self.fs.move(self._path(key), path)
        return self.uri(new_key)

    def remove(self, key: str) -> None:
        """Delete one object: only for a sidecar whose content lives on elsewhere (see move)."""
        self.fs.delete_file(self._path(key))

    def list(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix``, sorted (unfinished ``.tmp-writing`` files are left out)."""
        return sorted(self._walk(prefix))

    def _walk(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix) if prefix.strip("/") else self.root
        info = self.fs.get_file_info(base)
        if info.type == pafs.FileType.NotFound:
            return
        if info.type == pafs.FileType.File:
            yield prefix.strip("/")
            return
        for entry in self.fs.get_file_info(pafs.FileSelector(base, recursive=True)):
            if entry.type == pafs.FileType.File and not entry.path.endswith(".tmp-writing"):
                yield entry.path[len(self.root) + 1 :]


def make_store(settings: Settings) -> RawStore:
    """The raw store for ``settings``: a local folder or the MinIO bucket."""
    if settings.is_local:
        root = settings.raw_root
        return RawStore(pafs.LocalFileSystem(), root, settings.lab_home.joinpath("raw").as_uri())
    s3 = pafs.S3FileSystem(
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        endpoint_override=settings.s3_endpoint,
        region=settings.s3_region,
        scheme=settings.s3_endpoint.split("://", 1)[0],
        connect_timeout=5,
        request_timeout=10,
    )
    return RawStore(s3, settings.raw_root, f"s3://{settings.raw_root}")


def get_store() -> RawStore:
    """The raw store of the current settings."""
    return make_store(get_settings())
