"""Fixtures every test layer shares: the agents installed as Pacemaker would run them.

The agents run as Pacemaker runs them through lab.resource (Agent, AgentRun); the processes
they leave are read through lab.host.
"""

import itertools
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from cinder_ocf.cli import install_agents
from lab.host import open_dir
from lab.resource import OCF_PATH

ROOT = Path(__file__).resolve().parent.parent


# A port is handed out here and bound later, by a daemon: one the kernel chose (bind to port 0)
# is free again in between, and another worker's fake or connection may be given it.  So the
# ports come from below the kernel's ephemeral range, a block of its own for each xdist worker.
PORT_BLOCK = 1000
FIRST_PORT_BLOCK = 10000
_next_port = itertools.count()


def _port_block() -> int:
    """The first port of this xdist worker's block (gw0, gw1, ...; the first without xdist)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return FIRST_PORT_BLOCK + int(worker.lstrip("gw") or 0) * PORT_BLOCK


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on and no other worker is handed (for a fake of
    the tests' own, or none)."""
    first = _port_block()
    ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert first + PORT_BLOCK <= ephemeral, f"worker block {first} reaches the ephemeral ports"
    for _ in range(PORT_BLOCK):
        port = first + next(_next_port) % PORT_BLOCK
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}..{first + PORT_BLOCK - 1}")


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """A lane whose interpreter `nobody` cannot run (tools/py39-lane says so) skips, visibly, the
    tests that run it as nobody: they would fail on permissions, not on the agents."""
    if os.environ.get("CINDER_OCF_LANE_NOBODY") != "no":
        return
    lane = os.environ.get("CINDER_OCF_LANE", "this lane")
    skip = pytest.mark.skip(reason=f"{lane}: nobody cannot run the test interpreter {sys.executable}")
    for item in items:
        if item.get_closest_marker("nobody"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def agents_dir() -> Iterator[Path]:
    """The agents as `cinder-ocf install-agents` writes them, bound to the test interpreter."""
    directory = open_dir("cinder-ocf-agents-")
    install_agents(str(directory), sys.executable)
    yield directory
    subprocess.run(["rm", "-rf", str(directory)], check=True)


def ocf_tester(
    agent: Path, instance: str, params: Dict[str, str], rsctmp: Path, timeout: float
) -> "subprocess.CompletedProcess[str]":
    """resource-agents' ocf-tester on one agent, with these parameters (never a password:
    ocf-tester puts them on its command line)."""
    args = [arg for name, value in params.items() for arg in ("-o", f"{name}={value}")]
    return subprocess.run(
        ["ocf-tester", "-n", instance, *args, str(agent)],
        env={"PATH": OCF_PATH, "HA_RSCTMP": str(rsctmp)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
