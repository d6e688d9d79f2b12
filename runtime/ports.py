"""Free TCP ports for the servers this project starts on one machine (test stacks, the
cluster rehearsal, throw-away PostgreSQL, Redis and Prometheus).

A port the kernel hands out for ``bind(0)`` comes from its ephemeral range, the same range
it uses for outgoing connections: between choosing a port and the server binding it, a
client connection of another process (a Triton server already running, a test's HTTP
client) can take it, and the server then fails with "address already in use". Ports here
come from below that range, and one process never hands out the same port twice.
"""

from __future__ import annotations

import random
import socket

# Below Linux's default ephemeral range (32768-60999) and apart from the ranges the S3
# test server picks (20000-28000, and those + 10000 for its gRPC ports).
LOW, HIGH = 10000, 19999
_given: set[int] = set()


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that is free now, outside the kernel's ephemeral range."""
    for _ in range(1000):
        port = random.randint(LOW, HIGH)
        if port not in _given and _bindable(port):
            _given.add(port)
            return port
    raise RuntimeError(f"no free port between {LOW} and {HIGH}")
