"""Fixtures every test layer shares: the agents installed as Pacemaker would run them.

The agents run as Pacemaker runs them through lab.resource (Agent, AgentRun); the processes
they leave are read through lab.host.
"""

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


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on (for a fake of the tests' own, or none)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
