"""The ports the tests hand to their daemons: no other worker, fake or connection may take one
between the handing out and the daemon's bind (CI once saw a fake Keystone answer on the port
meant for a fake cinder-api)."""

import socket
from pathlib import Path

import pytest

from tests.conftest import PORT_BLOCK, free_port


def ephemeral_ports() -> range:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def test_ports_come_from_a_block_of_each_worker_below_the_ephemeral_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handed = {}
    for worker in ("gw0", "gw1", "gw2", "gw7"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        handed[worker] = {free_port() for _ in range(20)}
    every = set().union(*handed.values())
    assert len(every) == 80, "two workers were handed the same port"
    assert not every & set(ephemeral_ports()), "the kernel may give these to anyone"
    for ports in handed.values():
        assert max(ports) - min(ports) < PORT_BLOCK


def test_a_port_someone_listens_on_is_not_handed_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", free_port()))
        listener.listen()
        taken = listener.getsockname()[1]
        assert taken not in {free_port() for _ in range(PORT_BLOCK)}
