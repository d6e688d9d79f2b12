"""runtime/ports.py: ports for the servers the project starts, away from the kernel's ephemeral range."""

from __future__ import annotations

import socket
from pathlib import Path

from runtime.ports import HIGH, LOW, free_port


def test_ports_are_free_distinct_and_below_the_ephemeral_range():
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(LOW <= port <= HIGH < ephemeral_low for port in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))  # really free


def test_a_port_in_use_is_never_handed_out(monkeypatch):
    taken, spare = free_port(), free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", taken))
        busy.listen()
        choices = iter([taken, taken, spare])
        monkeypatch.setattr("runtime.ports.random.randint", lambda a, b: next(choices))
        monkeypatch.setattr("runtime.ports._given", set())
        assert free_port() == spare
