"""``lab export``: gold as Parquet on any S3 endpoint, one file per table and day, with a manifest.

Layout under ``s3://bucket/prefix/``::

    manifest.json                                         what is exported: the one entry point
    fct_asset_daily/trade_date=2025-03-31/part-<sha16>.parquet
    asset_rolling/trade_date=.../part-<sha16>.parquet     (the daily tables, one file per day)
    daily_rankings/trade_date=.../part-<sha16>.parquet
    dim_asset/part-<sha16>.parquet                        (the dimension, whole)

Each file is named after the SHA-256 of its bytes, and the manifest lists every file with its
table, day, row count and checksum. A re-export of a day is atomic for readers of the
manifest: the new files are written first (under new names: their content differs), then the
manifest is replaced in one PUT, which S3 makes visible whole, and only then are the files it
no longer lists deleted. A reader never sees a day twice or half a day; one who lists the
prefix instead of reading the manifest may, for the moment between the PUT and the deletes.
Run one export per target at a time (the DAG's ``max_active_runs=1`` does).

Credentials come only from boto3's standard chain (environment, shared files, instance role);
the endpoint from ``LAB_EXPORT_ENDPOINT`` or boto3's own ``AWS_ENDPOINT_URL``. Nothing here
prints or returns them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from lab_env.config import Settings, get_settings
from lab_env.dashboard.data import NAMESPACE, TABLES
from lab_env.dates import check_range
from lab_env.errors import LabError

if TYPE_CHECKING:
    import pyarrow as pa

MANIFEST = "manifest.json"
FORMAT = "lakehouse-lab-export/1"
DAY_COLUMN = "trade_date"
# Sort order of each table's rows inside a file: the same rows always give the same bytes.
KEYS = {"dim_asset": ["asset_id"], "fct_asset_daily": ["trade_date", "asset_id"],
        "asset_rolling": ["trade_date", "asset_id"], "daily_rankings": ["trade_date", "asset_id"]}


@dataclass(frozen=True)
class Target:
    bucket: str
    prefix: str  # without a trailing slash; "" for the bucket's root

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


def parse_target(url: str) -> Target:
    """``s3://bucket/prefix`` as a Target, or a LabError."""
    parsed = urlparse(url.strip())
    if parsed.scheme != "s3" or not parsed.netloc or parsed.query or parsed.fragment:
        raise LabError(f"{url!r} is not an S3 target.",
                       "give it as s3://bucket/prefix, e.g. --to s3://my-bucket/lakehouse-gold.")
    return Target(parsed.netloc, parsed.path.strip("/"))


def s3_client(settings: Settings | None = None) -> Any:
    """A boto3 S3 client: credentials from the standard AWS chain only, path-style addressing.

    The endpoint is ``LAB_EXPORT_ENDPOINT`` when set, else boto3's own choice (it reads
    ``AWS_ENDPOINT_URL``, then uses AWS).
    """
    import boto3
    from botocore.config import Config

    settings = settings or get_settings()
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.export_endpoint or None,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5,
                                                               "mode": "standard"}),
    )


@dataclass
class ExportResult:
    """What one export did (no credential, no endpoint secret: safe to print)."""

    target: str
    manifest: str  # the manifest's s3:// URL
    days: list[str] = field(default_factory=list)  # the days (re-)exported
    rows: dict[str, int] = field(default_factory=dict)  # per table, rows written now
    written: int = 0  # new or replaced files
    unchanged: int = 0  # files whose bytes were already there
    deleted: int = 0  # files no longer listed, removed after the manifest swap


def parquet_bytes(rows: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(rows, sink, compression="zstd")
    return sink.getvalue()


def export_gold(
    target: str | Target,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    settings: Settings | None = None,
    client: Any = None,
    namespace: str = NAMESPACE,
) -> ExportResult:
    """Export gold's ``main`` for ``start``..``end`` (default: every day gold has) to ``target``."""
    import pyarrow.compute as pc

    from lab_env.dashboard.data import load_tables

    settings = settings or get_settings()
    where = target if isinstance(target, Target) else parse_target(target)
    if start and end:
        check_range(start, end)
    client = client or s3_client(settings)
    arrow, states = load_tables(settings, namespace)
    old = read_manifest(client, where)
    result = ExportResult(str(where), f"s3://{where.bucket}/{where.key(MANIFEST)}")

    files: dict[str, list[dict[str, Any]]] = {}
    chosen: set[str] = set()
    for name in TABLES:
        rows = arrow[name]
        kept = old.get("tables", {}).get(name, {}).get("files", []) if name != "dim_asset" else []
        if DAY_COLUMN in rows.column_names:
            days = sorted(d for d in set(rows.column(DAY_COLUMN).to_pylist())
                          if (start is None or d >= start) and (end is None or d <= end))
            # Days outside the range keep their files; days inside are replaced (or dropped,
            # when gold no longer has them).
            lo, hi = (start.isoformat() if start else None), (end.isoformat() if end else None)
            kept = [f for f in kept if not ((lo is None or f["trade_date"] >= lo)
                                            and (hi is None or f["trade_date"] <= hi))]
            parts = [(day.isoformat(), rows.filter(pc.equal(rows.column(DAY_COLUMN), day)))
                     for day in days]
            chosen.update(day.isoformat() for day in days)
        else:
            parts = [(None, rows)]
        entries = list(kept)
        result.rows[name] = 0
        previous = {f["key"]: f for f in old.get("tables", {}).get(name, {}).get("files", [])}
        for day, part in parts:
            part = part.sort_by([(k, "ascending") for k in KEYS[name]])
            body = parquet_bytes(part)
            digest = hashlib.sha256(body).hexdigest()
            folder = (name, f"{DAY_COLUMN}={day}") if day else (name,)
            key = where.key(*folder, f"part-{digest[:16]}.parquet")
            entry = {"key": key, "rows": part.num_rows, "sha256": digest, "bytes": len(body)}
            if day:
                entry = {"trade_date": day, **entry}
            if previous.get(key, {}).get("sha256") == digest and _exists(client, where, key):
                result.unchanged += 1
            else:
                client.put_object(Bucket=where.bucket, Key=key, Body=body,
                                  ContentType="application/vnd.apache.parquet",
                                  ChecksumSHA256=_b64(digest))
                result.written += 1
            entries.append(entry)
            result.rows[name] += part.num_rows
        entries.sort(key=lambda f: (f.get("trade_date", ""), f["key"]))
        files[name] = entries
    result.days = sorted(chosen)

    manifest = {
        "format": FORMAT,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "source": {"catalog": settings.catalog_name, "namespace": namespace,
                   "snapshots": {n: s.snapshot_id for n, s in states.items()}},
        "tables": {name: {"partitioned_by": DAY_COLUMN if name != "dim_asset" else None,
                          "rows": sum(f["rows"] for f in files[name]), "files": files[name]}
                   for name in TABLES},
    }
    body = (json.dumps(manifest, indent=2) + "\n").encode()
    # The swap: one PUT replaces the manifest whole; readers see the old or the new export.
    client.put_object(Bucket=where.bucket, Key=where.key(MANIFEST), Body=body,
                      ContentType="application/json")
    listed = {f["key"] for entries in files.values() for f in entries}
    stale = [key for key in _keys(client, where) if key not in listed]
    for chunk in range(0, len(stale), 1000):
        client.delete_objects(Bucket=where.bucket, Delete={
            "Objects": [{"Key": k} for k in stale[chunk:chunk + 1000]], "Quiet": True})
    result.deleted = len(stale)
    return result


def read_manifest(client: Any, target: Target) -> dict[str, Any]:
    """The target's manifest, or {} before the first export."""
    from botocore.exceptions import ClientError

    try:
        body = client.get_object(Bucket=target.bucket, Key=target.key(MANIFEST))["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return {}
        raise
    manifest = json.loads(body)
    if manifest.get("format") != FORMAT:
        raise LabError(f"{target}/{MANIFEST} is not a Lakehouse Lab export ({FORMAT}).",
                       "export to an empty prefix, or to the prefix of an earlier `lab export`.")
    return manifest


def read_export(target: str | Target, client: Any = None) -> dict[str, pa.Table]:
    """Every table of an export, read through its manifest, each file's SHA-256 verified."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = target if isinstance(target, Target) else parse_target(target)
    client = client or s3_client()
    manifest = read_manifest(client, where)
    if not manifest:
        raise LabError(f"No export at {where}.", f"run `lab export --to {where}` first.")
    tables = {}
    for name, spec in manifest["tables"].items():
        parts = []
        for entry in spec["files"]:
            body = client.get_object(Bucket=where.bucket, Key=entry["key"])["Body"].read()
            if hashlib.sha256(body).hexdigest() != entry["sha256"]:
                raise LabError(f"{entry['key']} does not match its SHA-256 in the manifest.",
                               f"export again: `lab export --to {where}`.")
            parts.append(pq.read_table(io.BytesIO(body)))
        tables[name] = pa.concat_tables(parts) if parts else pa.table({})
    return tables


def _keys(client: Any, target: Target) -> list[str]:
    """Every data file key under the target's table folders."""
    keys = []
    for name in TABLES:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=target.bucket, Prefix=target.key(name) + "/")
        keys += [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    return keys


def _exists(client: Any, target: Target, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=target.bucket, Key=key)
        return True
    except ClientError:
        return False


def _b64(hex_digest: str) -> str:
    import base64

    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def as_lab_error(exc: BaseException, target: str) -> LabError | None:
    """What boto3 raised, as one line with a fix (None if it is not a boto3 error)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "NoCredentialsError" in names or "PartialCredentialsError" in names:
        return LabError(
            f"No AWS credentials for the export to {target}.",
            "provide them the standard way: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, or an instance role (never in LAB_* settings).",
        )
    if "EndpointConnectionError" in names:
        return LabError(
            f"The S3 endpoint for {target} cannot be reached.",
            "check LAB_EXPORT_ENDPOINT (or AWS_ENDPOINT_URL) and that the server is up.",
        )
    if "ClientError" in names:
        error = getattr(exc, "response", {}).get("Error", {})
        code = error.get("Code", "error")
        if code in ("NoSuchBucket",):
            return LabError(f"The bucket of {target} does not exist.",
                            "create it first, or export to a bucket you have.")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            return LabError(f"S3 refused the export to {target} ({code}).",
                            "check the credentials' permissions (s3:PutObject, s3:GetObject, "
                            "s3:ListBucket, s3:DeleteObject) on that bucket and prefix.")
        return LabError(f"S3 answered {code} for the export to {target}.",
                        "run with `lab --verbose export ...` to see the request that failed.")
    return None
