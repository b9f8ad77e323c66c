"""Time one incremental day against a full refresh, over a long generated history.

    .venv/bin/python bench/incremental.py [--days 365] [--assets 20] [--home DIR] [--keep]
                                          [--no-doc] [--note TEXT]

In a fresh LAB_HOME (a temp folder unless ``--home``), it writes ``--days`` days of bronze for
``--assets`` assets, ending 2025-12-31, straight into the bronze contract's layout (one
``/assets`` snapshot and one hourly history per asset and day, each with its ``.meta.json``),
from the walk of :mod:`lab_env.source.samples`. Then, with
``lab_env.jobs.runner.run_pipeline`` (the code ``lab run`` runs: every step a solution notebook
run as a job, all in one kernel):

1. ``full refresh``: silver and gold rebuilt from every day of bronze but the last (a full
   refresh reads every bronze partition there is, so the last day is not written yet);
2. the last day lands in bronze;
3. ``incremental``: silver and gold for that one day, as the next daily run would, on top of
   the history the full refresh built.

It prints the seconds of each (per step too) and the ratio, and writes them to the table in
``docs/production.md`` (unless ``--no-doc``). Bronze is not timed: it is incremental by
construction (one partition per logical date) and is never refreshed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import random
import re
import shutil
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any
from unittest import mock

from lab_env.jobs.runner import RunSummary, run_pipeline, step_named
from lab_env.lake.storage import RawStore, get_store
from lab_env.source import samples

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "production.md"
BEGIN, END = "<!-- bench/incremental.py: begin -->", "<!-- bench/incremental.py: end -->"
LAST_DAY = dt.date(2025, 12, 31)
SEED = 20250101
WIDTH = 100  # the docs' line length


def lab_home(home: Path) -> contextlib.AbstractContextManager[object]:
    """Point this process, and the kernels it starts, at ``home`` (its settings are read
    again: nothing has read them before)."""
    return mock.patch.dict(os.environ, LAB_HOME=str(home))


def asset_specs(count: int) -> list[samples.AssetSpec]:
    """The sample's 20 assets, then numbered copies of them (``bitcoin-2`` ...) up to ``count``."""
    specs = []
    for n in range(count):
        base = samples.ASSETS[n % len(samples.ASSETS)]
        copy = n // len(samples.ASSETS)
        specs.append(base if copy == 0 else dataclasses.replace(
            base, id=f"{base.id}-{copy + 1}", symbol=f"{base.symbol}{copy + 1}",
            name=f"{base.name} {copy + 1}"))
    return specs


class BronzeWriter:
    """Writes generated API answers into bronze as the bronze notebook would store them."""

    def __init__(self, store: RawStore, days: list[dt.date], assets: int) -> None:
        self.store = store
        self.days = days
        self.specs = asset_specs(assets)
        # one lead day: the first day's overlap hour and its 24-hour change
        self.start = dt.datetime.combine(days[0] - dt.timedelta(days=1), dt.time())
        hours = 24 * (len(days) + 1)
        rng = random.Random(SEED)
        self.walks = {s.id: samples._walk(s, hours, random.Random(rng.getrandbits(64)))
                      for s in self.specs}
        self.files = 0

    def _put(self, key: str, body: bytes, meta: dict[str, Any]) -> None:
        digest = hashlib.sha256(body).hexdigest()
        key = key.replace("<sha16>", digest[:16])
        meta = {**meta, "content_sha256": digest}
        self.store.put(key, body)
        self.store.put(key + ".meta.json", json.dumps(meta).encode())
        self.files += 2

    def write_day(self, day: dt.date) -> None:
        """The day's /assets snapshot and every asset's history, with their meta files."""
        index = (day - self.days[0]).days
        last = 24 + 24 * index + 23  # the day's 23:00 point
        midnight = samples.to_ms(dt.datetime.combine(day, dt.time()))
        fetched = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 10), dt.UTC)
        meta = {"source": "coincap", "fetched_at": fetched.isoformat(timespec="milliseconds"),
                "run_id": "bench-generate", "logical_date": day.isoformat(), "http_status": 200}
        by_cap: list[tuple[float, dict[str, Any]]] = []
        for spec in self.specs:
            walk = self.walks[spec.id]
            window = range(last - 23, last + 1)
            traded = sum(walk.volumes[h] for h in window)
            price, supply = walk.prices[last], walk.supplies[last]
            by_cap.append((price * supply, {
                "id": spec.id, "rank": "", "symbol": spec.symbol, "name": spec.name,
                "supply": samples.num(supply),
                "maxSupply": samples.num(spec.max_supply) if spec.max_supply else None,
                "marketCapUsd": samples.num(price * supply),
                "volumeUsd24Hr": samples.num(traded), "priceUsd": samples.num(price),
                "changePercent24Hr": samples.num((price / walk.prices[last - 24] - 1) * 100),
                "vwap24Hr": samples.num(
                    sum(walk.prices[h] * walk.volumes[h] for h in window) / traded),
                "explorer": spec.explorer,
            }))
        rows = [row for _, row in sorted(by_cap, key=lambda pair: -pair[0])]
        for rank, row in enumerate(rows, start=1):
            row["rank"] = str(rank)
        body = {"data": rows, "timestamp": samples.snapshot_ms(day)}
        self._put(f"bronze/coincap/assets/ingest_date={day}/assets-<sha16>.json",
                  json.dumps(body, separators=(",", ":")).encode(),
                  {**meta, "endpoint": "assets", "record_count": len(rows),
                   "request": {"path": "/assets", "params": {"limit": len(rows), "offset": 0}}})
        for spec in self.specs:
            walk = self.walks[spec.id]
            points = []
            for hour in range(last - 24, last + 1):  # 23:00 the day before .. 23:00
                ms = samples.to_ms(self.start) + hour * samples.HOUR_MS
                points.append({"priceUsd": samples.num(walk.prices[hour]), "time": ms,
                               "circulatingSupply": samples.num(walk.supplies[hour]),
                               "date": samples.iso_ms(ms)})
            body = {"data": points, "timestamp": samples.snapshot_ms(day)}
            params = {"interval": "h1", "start": midnight - samples.HOUR_MS,
                      "end": midnight + samples.DAY_MS - 1}
            self._put(
                f"bronze/coincap/asset_history/ingest_date={day}/asset_id={spec.id}/"
                "history-<sha16>.json",
                json.dumps(body, separators=(",", ":")).encode(),
                {**meta, "endpoint": "asset_history", "record_count": len(points),
                 "request": {"path": f"/assets/{spec.id}/history", "params": params}})


def timed_run(label: str, start: dt.date, end: dt.date, full_refresh: bool) -> RunSummary:
    """Silver and gold for ``start``..``end``; stop the benchmark if a step fails."""
    print(f"\n== {label}: {start} .. {end}{' (full refresh)' if full_refresh else ''}", flush=True)
    summary = run_pipeline(start, end, full_refresh=full_refresh, run_id=f"bench-{label}",
                           steps=[step_named("silver"), step_named("gold")])
    if not summary.ok:
        raise SystemExit(f"{label} failed: {summary.steps[-1].error}")
    return summary


def seconds(summary: RunSummary, step: str | None = None) -> float:
    return sum(s.seconds for s in summary.steps if step is None or s.name == step)


def written(summary: RunSummary) -> int:
    return sum(c.added_records for s in summary.steps for c in s.tables)


def doc_table(args: argparse.Namespace, days: list[dt.date], price_rows: int, files: int,
              runs: dict[str, RunSummary]) -> str:
    """The markdown block this benchmark keeps in docs/production.md."""
    incremental, full = runs["incremental"], runs["full-refresh"]
    lines = [
        BEGIN,
        textwrap.fill(
            f"Measured {dt.date.today()} with `bench/incremental.py --days {args.days} --assets "
            f"{args.assets}`: bronze for {days[0]} .. {days[-1]} ({files:,} files), "
            f"{price_rows:,} rows in `silver.asset_prices` at the end; {os.cpu_count()} CPU "
            f"cores, Python {platform.python_version()}. {args.note}".rstrip(), WIDTH),
        "",
        "| run | days processed | silver s | gold s | total s | rows written |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, summary, span in (("full refresh", full, len(days) - 1),
                                 ("one more day, incremental", incremental, 1)):
        lines.append(f"| {label} | {span} | {seconds(summary, 'silver'):.0f} | "
                     f"{seconds(summary, 'gold'):.0f} | {seconds(summary):.0f} | "
                     f"{written(summary):,} |")
    lines += [
        "",
        textwrap.fill(
            f"A full refresh took **{seconds(full) / seconds(incremental):.1f}x** the time of one "
            "incremental day. Both runs execute their steps as jobs in one kernel, so each "
            "figure includes one kernel and one Spark start-up (in silver's seconds) and the "
            "checks that guard the data, not the lessons' extras.", WIDTH),
        END,
    ]
    return "\n".join(lines)


def update_doc(block: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{DOC} has no {BEGIN} ... {END} block to replace.")
    DOC.write_text(pattern.sub(lambda _: block, text), encoding="utf-8")
    print(f"\nwrote the figures to {DOC.relative_to(REPO)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365, help="days of history (default 365)")
    parser.add_argument("--assets", type=int, default=20, help="assets per day (default 20)")
    parser.add_argument("--home", type=Path, help="LAB_HOME to build in (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temp LAB_HOME afterwards")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/production.md")
    parser.add_argument("--note", default="", help="a sentence added to the doc, e.g. the load")
    args = parser.parse_args(argv)
    if args.days < 2 or args.assets < 1:
        parser.error("--days must be at least 2 and --assets at least 1")
    days = [LAST_DAY - dt.timedelta(days=n) for n in range(args.days - 1, -1, -1)]
    home = args.home or Path(tempfile.mkdtemp(prefix="bench-incremental-"))
    try:
        with lab_home(home):
            print(f"LAB_HOME {home}: {args.days} days x {args.assets} assets, "
                  f"{days[0]} .. {days[-1]}")
            writer = BronzeWriter(get_store(), days, args.assets)
            began = time.perf_counter()
            for day in days[:-1]:
                writer.write_day(day)
            print(f"bronze: {writer.files:,} files in {time.perf_counter() - began:.0f}s "
                  "(not timed below)")
            runs = {"full-refresh": timed_run("full-refresh", days[0], days[-2], True)}
            writer.write_day(days[-1])
            runs["incremental"] = timed_run("incremental", days[-1], days[-1], False)
            from lab_env.lake.catalog import get_catalog

            price_rows = get_catalog().load_table("silver.asset_prices").scan().count()
        print(f"\n{'run':<14}{'silver s':>10}{'gold s':>10}{'total s':>10}{'rows written':>14}")
        for label, summary in runs.items():
            print(f"{label:<14}{seconds(summary, 'silver'):>10.1f}{seconds(summary, 'gold'):>10.1f}"
                  f"{seconds(summary):>10.1f}{written(summary):>14,}")
        ratio = seconds(runs["full-refresh"]) / seconds(runs["incremental"])
        print(f"full refresh / incremental day: {ratio:.1f}x ({price_rows:,} price rows)")
        if not args.no_doc:
            update_doc(doc_table(args, days, price_rows, writer.files, runs))
    finally:
        if args.home is None and not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
