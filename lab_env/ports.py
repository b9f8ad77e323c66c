"""Free TCP ports on 127.0.0.1 for the servers the lab starts (the stack, Kafka, tests).

A port from ``bind(0)`` is an ephemeral one: in the seconds before a server binds it (a JVM
starts first), the kernel can hand it to any client socket on the machine, and the server then
fails with "Address already in use". A port below the ephemeral range is taken only by a server
that asks for it by number, so the lab picks its ports there.
"""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

from lab_env.errors import LabError

HOST = "127.0.0.1"


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands out for bind(0) and to every client socket."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49152, 65535  # macOS and the IANA dynamic range


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 now, picked at random below the ephemeral
    range (each one bound once to check it)."""
    low, _ = ephemeral_range()
    candidates = list(range(max(1024, low - 20000), low))
    random.shuffle(candidates)
    picked: list[int] = []
    for candidate in candidates:
        with contextlib.closing(socket.socket()) as sock:
            try:
                sock.bind((HOST, candidate))
            except OSError:
                continue
        picked.append(candidate)
        if len(picked) == count:
            return picked
    raise LabError(f"No {count} free ports below {low} on {HOST}.",
                   "stop some servers on this machine, then try again.")
