"""Helpers for the server tests: free loopback ports and which addresses a port listens on."""

from __future__ import annotations

import os
import socket


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) with a socket in LISTEN state on ``port`` (Linux)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                address, port_hex = fields[1].split(":")
                if fields[3] == "0A" and int(port_hex, 16) == port:
                    found.add(address)
    return found


def other_address() -> str | None:
    """A non-loopback IPv4 address of this machine, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.254.254.254", 1))
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def assert_loopback_only(port: int) -> None:
    """The server on ``port`` listens on 127.0.0.1 only and refuses this machine's other address."""
    import sys

    if sys.platform == "linux":
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
    other = other_address()
    if other is not None:
        with socket.socket() as s:
            s.settimeout(2.0)
            assert s.connect_ex((other, port)) != 0
