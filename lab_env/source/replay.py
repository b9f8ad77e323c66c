"""A local HTTP server that replays ``data_samples/`` exactly like the CoinCap API, with faults.

``lab serve-samples`` runs it in the foreground; :func:`replay_server` runs it in a thread for
tests, notebooks and ``lab run``. It serves ``GET /v3/assets`` (``limit``, ``offset``, ``ids``)
and ``GET /v3/assets/{id}/history`` (``interval`` h1 or d1, ``start`` and ``end`` in epoch ms,
both inclusive). The real ``/assets`` is always "now"; here the request header
``X-Replay-As-Of: YYYY-MM-DD`` picks the day's snapshot (default: the last one) and hides
history after that day.

Faults make it misbehave the way real APIs do. Counted faults hit the first N requests
(N < 0: every request) of their route, or of every route by default:
``rate_limit`` (429 + Retry-After), ``server_errors`` (500), ``truncate`` (a 200 whose JSON
is cut in half), ``delay`` seconds for ``slow_requests`` requests; and on every answer:
``rename_field`` ("old=new"), ``extra_field`` ("name" or "name=value"), ``null_field``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from lab_env.errors import LabError
from lab_env.source import samples
from lab_env.source.client import AS_OF_HEADER

log = logging.getLogger(__name__)

BASE_PATH = "/v3"
ROUTES = ("assets", "history")
COUNTED_FAULTS = ("rate_limit", "server_errors", "truncate", "delay")
FIELD_FAULTS = ("rename_field", "extra_field", "null_field")
_HISTORY = re.compile(rf"^{BASE_PATH}/assets/([^/]+)/history$")
_MAX_LIMIT = 2000


@dataclass(frozen=True)
class Faults:
    """How the server misbehaves; the defaults make it a well-behaved API."""

    rate_limit: int = 0  # answer 429 to the first N requests
    retry_after: str = "1"  # the Retry-After header sent with each 429 (seconds or HTTP date)
    server_errors: int = 0  # answer 500 to the first N requests
    delay: float = 0.0  # wait this many seconds before answering ...
    slow_requests: int = -1  # ... the first N requests (-1: every request)
    truncate: int = 0  # cut the JSON body of the first N answers in half
    rename_field: str | None = None  # "priceUsd=price": rename a field in every record
    extra_field: str | None = None  # "source=replay": add a field to every record
    null_field: str | None = None  # "priceUsd": set a field to null in every record
    route: str | Mapping[str, str] | None = None  # one route for all faults, or fault -> route

    def __post_init__(self) -> None:
        for name in ("rename_field", "extra_field"):
            value = getattr(self, name)
            if value is not None and (not value or value.startswith("=")):
                raise LabError(f"Fault {name}={value!r} names no field.", "use NAME or NAME=VALUE.")
        if self.rename_field is not None and "=" not in self.rename_field:
            raise LabError(
                f"Fault rename_field={self.rename_field!r} has no new name.", "use OLD=NEW."
            )
        routes = self.route.values() if isinstance(self.route, Mapping) else [self.route]
        for route in routes:
            if route is not None and route not in ROUTES:
                raise LabError(f"Unknown route {route!r} for a fault.", f"use one of {ROUTES}.")
        if isinstance(self.route, Mapping):
            known = {f.name for f in fields(self)} - {"route", "retry_after", "slow_requests"}
            for name in self.route:
                if name not in known:
                    raise LabError(
                        f"Unknown fault {name!r} in route.", f"use one of {sorted(known)}."
                    )

    def applies(self, fault: str, route: str) -> bool:
        """Whether ``fault`` is limited to another route than ``route``."""
        wanted = self.route.get(fault) if isinstance(self.route, Mapping) else self.route
        return wanted is None or wanted == route


@dataclass
class Seen:
    """One request the server received (the Authorization value itself is never kept)."""

    route: str
    path: str
    query: str
    as_of: str | None
    authorized: bool
    status: int = 0
    faults: list[str] = field(default_factory=list)


class _Http(ThreadingHTTPServer):
    daemon_threads = True
    replay: ReplayServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("replay: connection from %s ended early", client_address)


class ReplayServer:
    """The replay API on ``127.0.0.1``; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        samples_dir: Path = samples.SAMPLES_DIR,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        faults: Faults | None = None,
        **fault_args: Any,
    ) -> None:
        self.samples_dir = Path(samples_dir)
        if not (self.samples_dir / samples.ASSETS_FILE).is_file():
            raise LabError(
                f"No replay samples in {self.samples_dir}.",
                "regenerate them with `lab samples`.",
            )
        self.faults = faults or Faults(**fault_args)
        self._api_key = api_key
        self.snapshots = samples.load_snapshots(self.samples_dir)
        self.days = sorted(self.snapshots)
        self.requests: list[Seen] = []
        self._history: dict[str, list[dict[str, Any]]] = {}
        self._fired: dict[str, int] = {}
        self._lock = threading.Lock()
        self._host = host
        self._http = _Http((host, port), _Handler)
        self._http.replay = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL to give the client, e.g. ``http://127.0.0.1:54321/v3``."""
        return f"http://{self._host}:{self._http.server_port}{BASE_PATH}"

    def start(self) -> ReplayServer:
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="replay-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._http.serve_forever()

    def stop(self) -> None:
        # While Python exits, the serving thread (a daemon) is frozen and would never answer a
        # shutdown: a script that left the server to the garbage collector (bronze's cells run
        # as a script) hung there. Closing the socket is all that is left to do then.
        if self._thread is not None and not sys.is_finalizing():
            self._http.shutdown()
            self._thread.join()
        self._thread = None
        self._http.server_close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- used by the handler threads -----

    def authorized(self, header: str | None) -> bool:
        if self._api_key is None:
            return True
        return hmac.compare_digest((header or "").encode(), f"Bearer {self._api_key}".encode())

    def take(self, fault: str, count: int, route: str) -> bool:
        """Whether this request gets ``fault``, counting it against the fault's first N."""
        if count == 0 or not self.faults.applies(fault, route):
            return False
        with self._lock:
            fired = self._fired.get(fault, 0)
            if 0 <= count <= fired:
                return False
            self._fired[fault] = fired + 1
            return True

    def history(self, asset_id: str) -> list[dict[str, Any]] | None:
        with self._lock:
            if asset_id not in self._history:
                path = self.samples_dir / samples.HISTORY_DIR / f"{asset_id}.json.gz"
                if not path.is_file():
                    return None
                self._history[asset_id] = samples.load_history(asset_id, self.samples_dir)
            return self._history[asset_id]

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    server: _Http
    protocol_version = "HTTP/1.1"
    server_version = "lab-replay/1"
    # Headers and body go out as two writes. With Nagle's algorithm the body waited for the
    # client's delayed ACK of the headers (40 ms on Linux) on every keep-alive answer.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("replay: " + format, *args)

    def do_GET(self) -> None:
        replay = self.server.replay
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        route = "history" if _HISTORY.match(path) else "assets"
        as_of = self.headers.get(AS_OF_HEADER)
        authorized = replay.authorized(self.headers.get("Authorization"))
        seen = Seen(route, path, parts.query, as_of, authorized)
        replay.record(seen)
        if not seen.authorized:
            self._send(seen, 401, _error("Unauthorized: send Authorization: Bearer <key>."))
            return
        faults = replay.faults
        if faults.delay > 0 and replay.take("delay", faults.slow_requests, route):
            seen.faults.append("delay")
            time.sleep(faults.delay)
        if replay.take("rate_limit", faults.rate_limit, route):
            seen.faults.append("rate_limit")
            self._send(seen, 429, _error("Too many requests."), {"Retry-After": faults.retry_after})
            return
        if replay.take("server_errors", faults.server_errors, route):
            seen.faults.append("server_errors")
            self._send(seen, 500, _error("Internal server error."))
            return
        try:
            payload = self._answer(replay, path, parse_qs(parts.query), as_of)
        except _ApiError as exc:
            self._send(seen, exc.status, _error(str(exc)))
            return
        for name in FIELD_FAULTS:
            if getattr(faults, name) is not None and faults.applies(name, route):
                seen.faults.append(name)
                _mutate(payload["data"], name, getattr(faults, name))
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        if replay.take("truncate", faults.truncate, route):
            seen.faults.append("truncate")
            body = body[: len(body) // 2]
        self._send(seen, 200, body)

    def _answer(
        self, replay: ReplayServer, path: str, query: dict[str, list[str]], as_of: str | None
    ) -> dict[str, Any]:
        day = _as_of_day(replay, as_of)
        if path == f"{BASE_PATH}/assets":
            return _assets(replay.snapshots[day], query)
        if match := _HISTORY.match(path):
            return _history(replay, match.group(1), query, day, as_of is not None)
        raise _ApiError(404, f"Not found: {path}. Routes: {BASE_PATH}/assets, "
                             f"{BASE_PATH}/assets/{{id}}/history.")

    def _send(
        self, seen: Seen, status: int, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        seen.status = status
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("replay: the client left before the answer to %s", seen.path)
            self.close_connection = True


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode("utf-8")


def _as_of_day(replay: ReplayServer, as_of: str | None) -> str:
    if as_of is None:
        return replay.days[-1]
    try:
        day = dt.date.fromisoformat(as_of.strip()).isoformat()
    except ValueError:
        raise _ApiError(400, f"{AS_OF_HEADER} must be a date like 2025-03-31.") from None
    if day not in replay.snapshots:
        raise _ApiError(
            404, f"No snapshot for {day}: the samples cover {replay.days[0]}..{replay.days[-1]}."
        )
    return day


def _int_param(query: dict[str, list[str]], name: str, default: int | None) -> int | None:
    values = query.get(name)
    if not values:
        return default
    try:
        return int(values[-1])
    except ValueError:
        raise _ApiError(400, f"Query parameter {name} must be an integer.") from None


def _assets(snapshot: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
    limit = _int_param(query, "limit", 100)
    offset = _int_param(query, "offset", 0)
    assert limit is not None and offset is not None
    if not 1 <= limit <= _MAX_LIMIT or offset < 0:
        raise _ApiError(400, f"limit must be 1..{_MAX_LIMIT} and offset >= 0.")
    rows = snapshot["data"]
    if ids := query.get("ids"):
        wanted = set(ids[-1].split(","))
        rows = [row for row in rows if row["id"] in wanted]
    return {"data": [dict(row) for row in rows[offset : offset + limit]],
            "timestamp": snapshot["timestamp"]}


def _history(
    replay: ReplayServer, asset_id: str, query: dict[str, list[str]], day: str, capped: bool
) -> dict[str, Any]:
    interval = (query.get("interval") or [""])[-1]
    if interval not in ("h1", "d1"):
        raise _ApiError(400, "interval must be h1 or d1 in the replay.")
    points = replay.history(asset_id)
    if points is None:
        raise _ApiError(404, f"{asset_id} not found.")
    start = _int_param(query, "start", None)
    end = _int_param(query, "end", None)
    if (start is None) != (end is None):
        raise _ApiError(400, "start and end go together (epoch milliseconds).")
    as_of_end = samples.snapshot_ms(dt.date.fromisoformat(day)) + 999
    if capped:  # nothing after the as-of day exists yet
        points = [p for p in points if p["time"] <= as_of_end]
    if interval == "d1":
        points = _daily(points)
    if start is not None and end is not None:
        points = [p for p in points if start <= p["time"] <= end]
    return {"data": [dict(p) for p in points], "timestamp": as_of_end - 999}


def _daily(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """d1 points: the mean of each UTC day's numeric hourly prices, stamped at midnight."""
    days: dict[int, list[dict[str, Any]]] = {}
    for point in points:
        days.setdefault(point["time"] // samples.DAY_MS * samples.DAY_MS, []).append(point)
    out = []
    for midnight, hours in sorted(days.items()):
        prices = []
        for point in hours:
            with contextlib.suppress(TypeError, ValueError):
                prices.append(float(point["priceUsd"]))
        out.append({
            "priceUsd": samples.num(sum(prices) / len(prices)) if prices else None,
            "time": midnight,
            "circulatingSupply": hours[-1]["circulatingSupply"],
            "date": samples.iso_ms(midnight),
        })
    return out


def _mutate(records: list[dict[str, Any]], fault: str, spec: str) -> None:
    name, _, value = spec.partition("=")
    for record in records:
        if fault == "rename_field" and name in record:
            record[value] = record.pop(name)
        elif fault == "extra_field":
            record[name] = value or "extra"
        elif fault == "null_field":
            record[name] = None


@contextlib.contextmanager
def replay_server(**kwargs: Any) -> Iterator[str]:
    """Run a replay server in a thread for the ``with`` block; yield its base URL.

    Keyword arguments are :class:`ReplayServer`'s (``api_key``, ``samples_dir``) and the
    :class:`Faults` (``rate_limit=2``, ``truncate=1``, ``route="history"`` ...).
    """
    with ReplayServer(**kwargs) as server:
        yield server.url

