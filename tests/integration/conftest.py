"""Fixtures of the integration tests: one real OpenStack stack per test session.

Needs root (apt-get, useradd, chown, services run as the ``cinder`` user).
``CINDER_OCF_STACK_VENV`` selects the stack venv (default /var/tmp/cinder-ocf/stack-venv,
built on first use); ``CINDER_OCF_KEEP_STACK_ROOT=1`` keeps the run directory (logs).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from lab.host import open_dir
from lab.resource import AgentRun, stack_resource
from lab.stack.install import STACK_PACKAGES, ensure_debian_packages, ensure_service_user, ensure_stack_venv
from lab.stack.openstack import OpenStack
from tests.conftest import ocf_tester

LOG = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
RUN_BASE = Path("/var/tmp/cinder-ocf")
SERVICE_USER = "cinder"


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """Mark every test under tests/integration with ``integration``."""
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def openstack() -> Iterator[OpenStack]:
    """RabbitMQ + Keystone + cinder.conf/db, started once per session, stopped at the end."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("the OpenStack integration stack needs root on Linux")
    venv = ensure_stack_venv()
    ensure_debian_packages(*STACK_PACKAGES)
    ensure_service_user(SERVICE_USER)
    RUN_BASE.mkdir(parents=True, exist_ok=True)
    os.chmod(RUN_BASE, 0o755)
    root = Path(tempfile.mkdtemp(prefix="run-", dir=RUN_BASE))
    os.chmod(root, 0o755)
    stack = OpenStack(root=root, venv=venv, service_user=SERVICE_USER)
    try:
        stack.start()
        yield stack
    finally:
        try:
            stack.close()
        finally:
            if os.environ.get("CINDER_OCF_KEEP_STACK_ROOT"):
                LOG.warning("keeping %s", root)
            else:
                shutil.rmtree(root, ignore_errors=True)


def ocf_tester_on(
    openstack: OpenStack, agents_dir: Path, name: str, timeout: float
) -> Tuple[subprocess.CompletedProcess[str], AgentRun, float]:
    """ocf-tester on agent name with the stack's daemon and cinder.conf, and no password on its
    command line (the checks use cinder.conf's credentials); the resource stopped after, its
    HA_RSCTMP removed: (ocf-tester's run, the stop's, how long ocf-tester took)."""
    agent = stack_resource(openstack, agents_dir, name, open_dir("cinder-ocf-rsctmp-"))
    begun = time.monotonic()
    try:
        run = ocf_tester(agent.path, agent.instance, agent.params, agent.rsctmp, timeout=timeout)
    finally:
        took = time.monotonic() - begun
        cleanup = agent("stop", timeout_s=60)
        subprocess.run(["rm", "-rf", str(agent.rsctmp)], check=True)
    return run, cleanup, took
