"""What the alert receiver (tests/conftest.py ``alert_receiver``) keeps of each request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RawRequest:
    """One request exactly as the receiver got it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Received(list[dict[str, Any]]):
    """The JSON bodies posted, in order; ``requests`` keeps each request as it came."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[RawRequest] = []
