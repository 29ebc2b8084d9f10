"""A free loopback port: for a server a test starts, or, with nothing started on it, an address
where nothing listens (the socket that found it is closed again)."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
