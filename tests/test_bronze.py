"""The bronze job (solutions/02_bronze.ipynb) against a real replay server, and its checks.

Three notebook executions in all (each starts a kernel): a clean run with a planted API key,
a second run of the same dates through ``lab ingest`` behind 429s and 500s (bronze must not
change), and a run whose source renames, adds and nulls fields and truncates one payload.
The checks' wrong-answer tests run in this process on real stores.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests

from lab_env.cli import main
from lab_env.config import Settings, get_settings, load_settings
from lab_env.course.checks import CHECK_MARKER, CheckResult
from lab_env.course.checks import bronze as checks
from lab_env.jobs.ingest import NOTEBOOK
from lab_env.jobs.runner import StepFailed, execute_notebook
from lab_env.lake.storage import RawStore, get_store
from lab_env.source.replay import ReplayServer
from tests.mistakes import mistake
from tests.pipeline_runs import lab_environment

KEY = "sk-test-PLANTED-123"
DAYS = ("2025-03-30", "2025-03-31")
META_FIELDS = {"source", "endpoint", "request", "fetched_at", "run_id", "logical_date",
               "http_status", "record_count", "content_sha256"}


def file_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def bodies(folder: Path, pattern: str) -> list[Path]:
    """The stored objects matching ``pattern``, without their .meta.json files."""
    return sorted(p for p in folder.glob(pattern) if not p.name.endswith(".meta.json"))


def check_lines(nb: nbformat.NotebookNode) -> list[str]:
    text = "".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
        for out in cell.get("outputs", []) if out.output_type == "stream"
    )
    return [line for line in text.splitlines() if line.startswith(CHECK_MARKER)]


class Ingested:
    """A LAB_HOME after one clean run of the bronze notebook, and the server that fed it."""

    def __init__(self, home: Path, executed: Path, server: ReplayServer) -> None:
        self.home = home
        self.executed = executed
        self.server = server

    @property
    def raw(self) -> Path:
        return self.home / "raw"


def run_folder(home: Path, start: str, end: str, run_id: str) -> Path:
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return load_settings(home=home).run_folder(first, last, run_id)


def bronze_summary(home: Path, start: str, end: str, run_id: str) -> dict[str, Any]:
    """The summary the bronze notebook wrote into the run's folder (Settings.run_folder)."""
    folder = run_folder(home, start, end, run_id)
    return json.loads((folder / "bronze_summary.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingested]:
    root = tmp_path_factory.mktemp("bronze")
    home, executed = root / "lakehouse", root / "02_bronze.ipynb"
    with ReplayServer(api_key=KEY) as server:
        env = {"LAB_HOME": str(home), "LAB_COINCAP_URL": server.url, "LAB_COINCAP_API_KEY": KEY}
        with lab_environment(**env):
            execute_notebook(NOTEBOOK, executed, {"start_date": DAYS[0], "end_date": DAYS[1],
                                                  "run_id": "test-1"})
        yield Ingested(home, executed, server)


@pytest.fixture
def home_copy(
    ingested: Ingested, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A copy of the ingested LAB_HOME that a test may damage; the checks read it."""
    home = tmp_path / "lakehouse"
    shutil.copytree(ingested.home, home)
    monkeypatch.setenv("LAB_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


# ----- the notebook, run for real -----


@pytest.mark.notebook
def test_clean_run_lands_the_contract_layout_and_passes_its_checks(ingested: Ingested) -> None:
    lines = check_lines(nbformat.read(str(ingested.executed), as_version=4))
    assert [line.split()[1:3] for line in lines] == [
        [f"02.{n}", "PASS"] for n in range(1, 6)
    ], "\n".join(lines)

    bronze = ingested.raw / "bronze" / "coincap"
    for day in DAYS:
        (snapshot,) = bodies(bronze / "assets" / f"ingest_date={day}", "assets-*.json")
        histories = bodies(bronze / "asset_history" / f"ingest_date={day}", "*/history-*.json")
        assert len(histories) == 20
        for path in [snapshot, *histories]:
            body = path.read_bytes()
            meta = json.loads(path.with_name(path.name + ".meta.json").read_text())
            assert set(meta) == META_FIELDS
            assert meta["content_sha256"] == hashlib.sha256(body).hexdigest()
            assert path.stem.endswith(meta["content_sha256"][:16])
            assert meta["logical_date"] == day and meta["http_status"] == 200
            assert meta["record_count"] == len(json.loads(body)["data"])
        first = json.loads(histories[0].read_bytes())["data"][0]
        assert first["date"].startswith(f"{int(day[-2:]) - 1:02d}T23:00", 8)  # the overlap hour

    summary = bronze_summary(ingested.home, DAYS[0], DAYS[1], "test-1")
    assert summary["days"] == {"done": 2, "skipped": 0, "failed": 0}
    assert summary["objects"]["written"] + summary["objects"]["skipped"] == 42
    assert summary["objects"]["rejected"] == 0
    rejected = list((ingested.raw / "bronze" / "_rejected").rglob("*.body"))
    assert len(rejected) == 1  # the lesson's deliberately truncated payload


@pytest.mark.notebook
def test_a_run_for_some_assets_fetches_only_their_history(tmp_path: Path) -> None:
    home, day = tmp_path / "lakehouse", DAYS[1]
    with ReplayServer() as server, lab_environment(LAB_HOME=str(home), LAB_COINCAP_URL=server.url):
        params = {"start_date": day, "end_date": day, "run_id": "some", "assets": ["bitcoin"]}
        executed = execute_notebook(NOTEBOOK, tmp_path / "some.ipynb", params)
        history = home / "raw" / "bronze" / "coincap" / "asset_history" / f"ingest_date={day}"
        assert sorted(p.name for p in history.iterdir()) == ["asset_id=bitcoin"]
        assert all(" PASS " in line for line in check_lines(executed))

        params |= {"run_id": "typo", "assets": ["bitcoin", "bitcorn"]}
        with pytest.raises(StepFailed, match="bitcorn are not in the /assets list"):
            execute_notebook(NOTEBOOK, tmp_path / "typo.ipynb", params)


@pytest.mark.notebook
def test_planted_api_key_is_sent_but_never_stored_or_printed(ingested: Ingested) -> None:
    assert ingested.server.requests and all(s.authorized for s in ingested.server.requests)
    for path in [*ingested.home.rglob("*"), ingested.executed]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), f"the API key leaked into {path}"


@pytest.mark.notebook
def test_second_ingest_behind_429_and_500_leaves_bronze_byte_identical(
    ingested: Ingested, capsys: pytest.CaptureFixture[str]
) -> None:
    before = file_hashes(ingested.raw)
    with ReplayServer(api_key=KEY, rate_limit=1, server_errors=1, retry_after="1") as flaky:
        env = {"LAB_HOME": str(ingested.home), "LAB_COINCAP_URL": flaky.url,
               "LAB_COINCAP_API_KEY": KEY, "LAB_COINCAP_BACKOFF_S": "0.05"}
        with lab_environment(**env):
            code = main(["ingest", "--start", DAYS[0], "--end", DAYS[1], "--run-id", "test-2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert file_hashes(ingested.raw) == before
    assert [s.status for s in flaky.requests[:3]] == [429, 500, 200]
    summary = bronze_summary(ingested.home, DAYS[0], DAYS[1], "test-2")
    assert summary["days"] == {"done": 0, "skipped": 2, "failed": 0}
    assert summary["objects"] == {"written": 0, "skipped": 42, "rejected": 0}
    assert "2 skipped" in out and KEY not in out
    executed = run_folder(ingested.home, DAYS[0], DAYS[1], "test-2") / "02_bronze.ipynb"
    assert f"executed notebook: {executed}" in out
    assert KEY.encode() not in executed.read_bytes()


@pytest.mark.notebook
def test_changed_fields_are_stored_as_received_and_a_cut_payload_is_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "lakehouse"
    day = "2025-02-10"
    faults = {"rename_field": "priceUsd=price", "extra_field": "note=hi",
              "null_field": "circulatingSupply", "truncate": 1, "route": "history"}
    with ReplayServer(api_key=KEY, **faults) as odd:
        with lab_environment(LAB_HOME=str(home), LAB_COINCAP_URL=odd.url, LAB_COINCAP_API_KEY=KEY):
            code = main(["ingest", "--start", day, "--run-id", "odd"])
        out = capsys.readouterr().out
        assert code == 1, out  # a rejected payload fails the day, so the job says so
        assert "1 failed" in out and "1 rejected" in out

        history = home / "raw" / "bronze" / "coincap" / "asset_history" / f"ingest_date={day}"
        stored = bodies(history, "*/history-*.json")
        assert len(stored) == 19  # the job fetches once: 19 stored, the cut one rejected
        for path in stored:
            body = path.read_bytes()
            meta = json.loads(path.with_name(path.name + ".meta.json").read_text())
            for point in json.loads(body)["data"]:
                assert set(point) == {"price", "time", "circulatingSupply", "date", "note"}
                assert point["circulatingSupply"] is None and point["note"] == "hi"
            again = requests.get(
                f"{odd.url}{meta['request']['path']}", params=meta["request"]["params"],
                headers={"Authorization": f"Bearer {KEY}", "X-Replay-As-Of": day}, timeout=10,
            )
            assert again.content == body  # byte for byte what the API sent

    rejected_dir = home / "raw" / "bronze" / "_rejected" / "coincap" / "asset_history"
    metas = [json.loads(p.with_name(p.name + ".meta.json").read_text())
             for p in rejected_dir.glob(f"ingest_date={day}/*.body")]
    # only the job's own: the lesson's demo payload (a "note" in its meta) never lands in a job
    assert sorted("note" in m for m in metas) == [False]
    (meta,) = [m for m in metas if "note" not in m]
    cut = list(rejected_dir.glob(f"ingest_date={day}/{meta['content_sha256'][:16]}.body"))
    assert meta["reason"].startswith("invalid JSON") and meta["logical_date"] == day
    assert meta["content_sha256"] == hashlib.sha256(cut[0].read_bytes()).hexdigest()
    summary = bronze_summary(home, day, day, "odd")
    assert summary["days"]["failed"] == 1 and summary["objects"]["rejected"] == 1


# ----- each check: a wrong answer fails with its hint, the right one passes -----


def right_key(endpoint: str, logical_date: str, body: bytes, asset_id: str | None = None) -> str:
    sha16 = hashlib.sha256(body).hexdigest()[:16]
    if endpoint == "assets":
        return f"bronze/coincap/assets/ingest_date={logical_date}/assets-{sha16}.json"
    return (f"bronze/coincap/asset_history/ingest_date={logical_date}/asset_id={asset_id}/"
            f"history-{sha16}.json")


def right_write(store: RawStore, key: str, body: bytes, meta: dict[str, Any]) -> bool:
    if store.exists(key):
        return False
    if not store.exists(key + ".meta.json"):
        store.put(key + ".meta.json", json.dumps(meta).encode())
    store.put(key, body)
    return True


def verdict(result: CheckResult, capsys: pytest.CaptureFixture[str]) -> tuple[bool, str]:
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"{CHECK_MARKER} {result.exercise} {'PASS' if result else 'FAIL'}")
    return result.passed, result.message


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        pytest.param(lambda e, d, b, asset_id=None: right_key(e, d, b, asset_id).replace(
            "ingest_date=", ""),
         "partition by the logical date", marks=mistake("02.1", "no-date-partition")),
        pytest.param(lambda e, d, b, asset_id=None: right_key(e, d, b, asset_id).replace(
            hashlib.sha256(b).hexdigest()[:16], hashlib.sha256(b).hexdigest()[:8]),
         "first 16 hex characters", marks=mistake("02.1", "short-hash")),
        pytest.param(lambda e, d, b, asset_id=None: Path(right_key(e, d, b, asset_id)),
         "return the key as a str", marks=mistake("02.1", "path-not-str")),
        pytest.param(lambda e, d, b, asset_id=None: right_key(e, d, b, asset_id).replace(
            "asset_id=", "id="),
         "the layout wants", marks=mistake("02.1", "asset-folder-misnamed")),
    ],
)
def test_check_02_1_partition_keys(
    wrong: Callable[..., Any], hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    passed, message = verdict(checks.partition_keys(wrong), capsys)
    assert not passed and hint in message
    passed, _ = verdict(checks.partition_keys(right_key), capsys)
    assert passed


def _land_snapshot(write: Callable[..., Any]) -> str:
    body = b'{"data":[{"id":"bitcoin"}],"timestamp":1743465599000}'
    key = right_key("assets", "2025-03-31", body)
    meta = {"source": "coincap", "endpoint": "assets",
            "request": {"path": "/assets", "params": {"limit": 20, "offset": 0}},
            "fetched_at": "2025-03-31T23:59:59+00:00", "run_id": "t", "logical_date": "2025-03-31",
            "http_status": 200, "record_count": 1,
            "content_sha256": hashlib.sha256(body).hexdigest()}
    write(get_store(), key, body, meta)
    return key


def _overwrites(store: RawStore, key: str, body: bytes, meta: dict[str, Any]) -> bool:
    store.put(key + ".meta.json", json.dumps(meta).encode())
    store.put(key, body)
    return True


def _duplicates(store: RawStore, key: str, body: bytes, meta: dict[str, Any]) -> bool:
    if store.exists(key):
        key = key.replace(".json", f"-{meta['run_id']}.json")
    return right_write(store, key, body, meta)


def _says_written(store: RawStore, key: str, body: bytes, meta: dict[str, Any]) -> bool:
    right_write(store, key, body, meta)
    return True


def _no_meta(store: RawStore, key: str, body: bytes, meta: dict[str, Any]) -> bool:
    if store.exists(key):
        return False
    store.put(key, body)
    return True


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        pytest.param(_overwrites, "check store.exists(key) first",
                     marks=mistake("02.2", "overwrites")),
        pytest.param(_duplicates, "skip (write nothing) when the key already exists",
                     marks=mistake("02.2", "second-copy")),
        pytest.param(_says_written, "return False when it skips",
                     marks=mistake("02.2", "always-true")),
        pytest.param(_no_meta, "write the meta beside the body", marks=mistake("02.2", "no-meta")),
    ],
)
def test_check_02_2_idempotent_write(
    wrong: Callable[..., Any], hint: str, fresh_settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = _land_snapshot(wrong)
    passed, message = verdict(checks.idempotent_write(wrong, key), capsys)
    assert not passed and hint in message


def test_check_02_2_passes_the_right_write(
    fresh_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _land_snapshot(right_write)
    passed, message = verdict(checks.idempotent_write(right_write, key), capsys)
    assert passed, message
    assert len(get_store().list("bronze")) == 2  # the check's own second write was skipped


@mistake("02.3", "not-kept")
@mistake("02.3", "no-reason")
@mistake("02.3", "also-in-bronze")
def test_check_02_3_rejected_kept(
    fresh_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    store, body, day = get_store(), b'{"data":[{"priceUsd":"1', "2025-03-31"
    sha = hashlib.sha256(body).hexdigest()
    key = f"bronze/_rejected/coincap/asset_history/ingest_date={day}/{sha[:16]}.body"
    meta = {"endpoint": "asset_history", "logical_date": day, "content_sha256": sha}

    passed, message = verdict(checks.rejected_kept(body, "asset_history", day), capsys)
    assert not passed and "nothing at" in message
    store.put(key, body)
    store.put(key + ".meta.json", json.dumps(meta).encode())
    passed, message = verdict(checks.rejected_kept(body, "asset_history", day), capsys)
    assert not passed and "no 'reason'" in message

    # a local store: fix the meta in place, as a learner would after reading the hint
    (Path(store.root) / f"{key}.meta.json").write_text(json.dumps(meta | {"reason": "cut"}))
    passed, message = verdict(checks.rejected_kept(body, "asset_history", day), capsys)
    assert passed, message

    store.put(right_key("asset_history", day, body, "bitcoin"), body)
    passed, message = verdict(checks.rejected_kept(body, "asset_history", day), capsys)
    assert not passed and "also landed in bronze" in message


@pytest.mark.notebook
@mistake("02.4", "record-count-wrong")
@mistake("02.4", "body-without-meta")
@mistake("02.4", "history-missing")
def test_check_02_4_partitions_complete(
    home_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    passed, message = verdict(checks.partitions_complete(*DAYS), capsys)
    assert passed, message
    history = home_copy / "raw" / "bronze" / "coincap" / "asset_history" / f"ingest_date={DAYS[1]}"

    (meta,) = (history / "asset_id=tron").glob("*.meta.json")
    original = meta.read_bytes()
    meta.write_text(json.dumps(json.loads(original) | {"record_count": 3}))
    passed, message = verdict(checks.partitions_complete(*DAYS), capsys)
    assert not passed and "record_count=3" in message
    meta.write_bytes(original)

    meta.unlink()
    passed, message = verdict(checks.partitions_complete(*DAYS), capsys)
    assert not passed and "has no .meta.json" in message

    shutil.rmtree(history / "asset_id=tron")
    passed, message = verdict(checks.partitions_complete(*DAYS), capsys)
    assert not passed and "no history for tron" in message
    passed, message = verdict(checks.partitions_complete(*DAYS, ["bitcoin"]), capsys)
    assert passed, message  # a run of some assets only needs those
    passed, message = verdict(checks.partitions_complete(*DAYS, ["bitcoin", "tron"]), capsys)
    assert not passed and "no history for tron" in message


@pytest.mark.notebook
@mistake("02.5", "new-key-each-run")
@mistake("02.5", "overwrites-bronze")
@mistake("02.5", "fingerprint-after-rerun")
def test_check_02_5_rerun_unchanged(home_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = checks.fingerprint()
    passed, message = verdict(checks.rerun_unchanged(before), capsys)
    assert passed, message

    store = get_store()
    store.put("bronze/coincap/assets/ingest_date=2025-03-31/assets-0123456789abcdef.json", b"{}")
    passed, message = verdict(checks.rerun_unchanged(before), capsys)
    assert not passed and "wrote 1 new file" in message

    (snapshot,) = (home_copy / "raw" / "bronze" / "coincap" / "assets" /
                   f"ingest_date={DAYS[0]}").glob("assets-*.json.meta.json")
    snapshot.write_text("{}")
    passed, message = verdict(checks.rerun_unchanged(before), capsys)
    assert not passed and "changed during the re-run" in message

    passed, message = verdict(checks.rerun_unchanged({}), capsys)
    assert not passed and "fingerprint taken before the re-run is empty" in message
