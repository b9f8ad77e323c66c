"""An HTTP client for the CoinCap-style market-data API, built for ingestion.

It returns every answer as received (status, body bytes, parsed JSON when the body parses),
so the bronze writer can store it untouched or reject it with a reason. Transient trouble
(429, 5xx, connection and read errors) is retried with exponential backoff and full jitter,
honouring ``Retry-After``; after ``coincap_max_tries`` tries it raises one :class:`LabError`
naming the URL and the last status. The API key travels only in the ``Authorization``
header: never in a URL, a log line or a returned object.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import quote, urlencode, urlsplit

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
)

from lab_env.config import Settings, get_settings
from lab_env.errors import LabError

log = logging.getLogger(__name__)

# Statuses worth another try: rate limited, or the server (or a proxy) failed for now.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Failures of the connection itself (refused, reset, timed out, cut mid-body).
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
AS_OF_HEADER = "X-Replay-As-Of"


@dataclass(frozen=True)
class ApiResponse:
    """One answer of the API, exactly as received, with the request that produced it."""

    path: str  # relative to the base URL, e.g. "/assets/bitcoin/history"
    params: dict[str, str | int]  # query parameters (the API key is never one)
    url: str  # full URL, safe to print
    status: int
    body: bytes
    data: Any | None  # the parsed JSON, or None when the body does not parse
    error: str | None  # why ``data`` is None
    fetched_at: str  # ISO-8601 UTC, when the answer arrived
    attempts: int
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def parsed(self) -> bool:
        return self.error is None

    @property
    def records(self) -> list[Any]:
        """The ``data`` list of the payload ([] when there is none)."""
        if isinstance(self.data, dict) and isinstance(self.data.get("data"), list):
            return self.data["data"]
        return []


def parse_json(body: bytes) -> tuple[Any | None, str | None]:
    """``(value, None)`` for a JSON object body, else ``(None, reason)``."""
    if not body:
        return None, "empty body"
    try:
        value = json.loads(body)
    except UnicodeDecodeError as exc:
        return None, f"body is not UTF-8 ({exc.reason} at byte {exc.start} of {len(body)})"
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} at char {exc.pos} of {len(body)} bytes"
    if not isinstance(value, dict):
        return None, f"JSON is a {type(value).__name__}, not an object"
    return value, None


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def _failure(state: RetryCallState) -> str:
    """Why a try failed, for a log line or an error: the transport error or the HTTP status."""
    outcome = state.outcome
    assert outcome is not None  # tenacity calls its hooks only after a try
    if outcome.failed:
        return type(outcome.exception()).__name__
    return f"HTTP {outcome.result().status_code}"


def _as_of_text(as_of: dt.date | str | None) -> str | None:
    if as_of is None:
        return None
    if isinstance(as_of, dt.datetime):
        as_of = as_of.date()
    day = as_of if isinstance(as_of, dt.date) else dt.date.fromisoformat(as_of)
    return day.isoformat()


class CoinCapClient:
    """One ``requests`` session to the API, with timeouts and bounded retries on every call."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        connect_timeout_s: float = 5.0,
        timeout_s: float = 30.0,
        max_tries: int = 5,
        backoff_s: float = 0.5,
        max_wait_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise LabError(
                f"The CoinCap URL {base_url!r} is not an http(s) URL.",
                "set LAB_COINCAP_URL like https://rest.coincap.io/v3, or unset it for the replay.",
            )
        parts = urlsplit(base_url)
        if parts.query or parts.username or parts.password:
            # never echo it: the query or user part may be the very key we must not print
            raise LabError(
                "LAB_COINCAP_URL carries a query string or credentials.",
                "give only scheme, host and path, and put the key in LAB_COINCAP_API_KEY.",
            )
        if max_tries < 1:
            raise LabError(f"coincap_max_tries is {max_tries}.", "set LAB_COINCAP_MAX_TRIES >= 1.")
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout_s, timeout_s)
        self.max_tries = max_tries
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self._rng = rng or random.Random()
        self._session = requests.Session()
        self._session.headers.update(
            {"Accept": "application/json", "User-Agent": "lakehouse-lab/0.1"}
        )
        if api_key:
            self._session.headers["Authorization"] = f"Bearer {api_key}"

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, base_url: str | None = None
    ) -> CoinCapClient:
        """A client for ``base_url`` (default: LAB_COINCAP_URL) with the settings' policy."""
        settings = settings or get_settings()
        url = base_url or settings.coincap_url
        if not url:
            raise LabError(
                "LAB_COINCAP_URL is not set and no base URL was given.",
                "run `lab serve-samples` and export LAB_COINCAP_URL=<the URL it prints>.",
            )
        key = settings.coincap_api_key.get_secret_value() if settings.coincap_api_key else None
        return cls(
            url,
            key,
            connect_timeout_s=settings.coincap_connect_timeout_s,
            timeout_s=settings.coincap_timeout_s,
            max_tries=settings.coincap_max_tries,
            backoff_s=settings.coincap_backoff_s,
            max_wait_s=settings.coincap_max_wait_s,
        )

    def __enter__(self) -> CoinCapClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    def __repr__(self) -> str:
        return f"CoinCapClient({self.base_url!r}, max_tries={self.max_tries})"

    # ----- the routes -----

    def assets(
        self, limit: int = 100, offset: int = 0, as_of: dt.date | str | None = None
    ) -> ApiResponse:
        """``GET /assets``: one page of the asset list (the replay serves the ``as_of`` day)."""
        return self.get("/assets", {"limit": limit, "offset": offset}, as_of=as_of)

    def asset_history(
        self,
        asset_id: str,
        interval: str = "h1",
        start_ms: int | None = None,
        end_ms: int | None = None,
        as_of: dt.date | str | None = None,
    ) -> ApiResponse:
        """``GET /assets/{id}/history``: price points between ``start_ms`` and ``end_ms``."""
        params: dict[str, str | int] = {"interval": interval}
        if start_ms is not None:
            params["start"] = int(start_ms)
        if end_ms is not None:
            params["end"] = int(end_ms)
        return self.get(f"/assets/{quote(asset_id, safe='')}/history", params, as_of=as_of)

    # ----- the machinery -----

    def get(
        self,
        path: str,
        params: Mapping[str, str | int] | None = None,
        *,
        as_of: dt.date | str | None = None,
    ) -> ApiResponse:
        """GET ``path`` with retries; return the answer, or raise LabError when retries run out.

        Retried, up to ``max_tries`` tries in all: the statuses in ``RETRY_STATUSES`` (429, 500,
        502, 503, 504) and the ``TRANSPORT_ERRORS`` (connection refused or reset, connect and
        read timeouts, a body cut off mid-transfer); each wait is :meth:`_wait`. Any other
        answer is returned at once (401 and 403 raise a LabError), any other error propagates.
        """
        params = dict(params or {})
        url = f"{self.base_url}{path}" + (f"?{urlencode(params)}" if params else "")
        headers = {}
        if (day := _as_of_text(as_of)) is not None:
            headers[AS_OF_HEADER] = day

        def fetch() -> requests.Response:
            # not streamed: requests reads the whole body here, so a body cut off mid-transfer
            # raises here too (ChunkedEncodingError) and is retried
            resp = self._session.get(
                f"{self.base_url}{path}", params=params, headers=headers, timeout=self.timeout
            )
            if resp.status_code in (401, 403):
                raise LabError(
                    f"CoinCap refused GET {url} (HTTP {resp.status_code}).",
                    "set LAB_COINCAP_API_KEY to a valid key (it is sent as a Bearer header).",
                )
            return resp

        def log_retry(state: RetryCallState) -> None:
            log.warning(
                "GET %s: %s; retry %d of %d in %.2fs",
                url, _failure(state), state.attempt_number, self.max_tries - 1,
                state.upcoming_sleep,
            )

        def give_up(state: RetryCallState) -> NoReturn:
            raise LabError(
                f"CoinCap GET {url} failed after {self.max_tries} tries "
                f"(last: {_failure(state)}).",
                "check that the API at LAB_COINCAP_URL answers (unset it to use the bundled "
                "replay server), then re-run: ingestion is idempotent.",
            )

        retrying = Retrying(
            stop=stop_after_attempt(self.max_tries),
            wait=self._wait,
            retry=retry_if_exception_type(TRANSPORT_ERRORS)
            | retry_if_result(lambda resp: resp.status_code in RETRY_STATUSES),
            before_sleep=log_retry,
            retry_error_callback=give_up,
            sleep=time.sleep,
        )
        resp = retrying(fetch)
        attempts = retrying.statistics["attempt_number"]
        return self._answer(path, params, url, resp, resp.content, attempts)

    def _wait(self, state: RetryCallState) -> float:
        """Seconds before the next try after try ``n``: full jitter from the client's rng,
        ``uniform(0, min(max_wait_s, backoff_s * 2**(n-1)))``, but never shorter than the
        ``Retry-After`` of the last answer (seconds or an HTTP date), capped at ``max_wait_s``."""
        if state.attempt_number >= self.max_tries:
            return 0.0  # tenacity asks before it stops: no sleep follows, draw nothing
        ceiling = min(self.max_wait_s, self.backoff_s * 2 ** (state.attempt_number - 1))
        jitter = self._rng.uniform(0, ceiling)
        outcome = state.outcome
        if outcome is None or outcome.failed:
            return jitter
        retry_after = retry_after_seconds(outcome.result().headers.get("Retry-After"))
        if retry_after is None:
            return jitter
        return min(self.max_wait_s, max(retry_after, jitter))

    @staticmethod
    def _answer(
        path: str,
        params: dict[str, str | int],
        url: str,
        resp: requests.Response,
        body: bytes,
        attempt: int,
    ) -> ApiResponse:
        data, error = parse_json(body)
        return ApiResponse(
            path=path,
            params=params,
            url=url,
            status=resp.status_code,
            body=body,
            data=data,
            error=error,
            fetched_at=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            attempts=attempt,
            headers={k: v for k, v in resp.headers.items() if k.lower() != "set-cookie"},
        )
