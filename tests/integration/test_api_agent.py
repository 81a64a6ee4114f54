"""ocf:openstack:cinder-api against the real cinder-api, Keystone and RabbitMQ from PyPI/Debian."""

import os
import signal
import statistics
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from lab.host import open_dir, process_state, session_members, wait_until
from lab.resource import Agent, stack_resource
from lab.stack.openstack import OpenStack
from tests.integration.conftest import ocf_tester_on


@pytest.fixture
def api(openstack: OpenStack, agents_dir: Path) -> Iterator[Agent]:
    """cinder-api configured as the OpenStack HA guide's crm primitive has it."""
    agent = stack_resource(
        openstack,
        agents_dir,
        "cinder-api",
        open_dir("cinder-ocf-rsctmp-"),
        os_password=openstack.admin.password,
        os_username="admin",
        os_tenant_name="admin",
        keystone_get_token_url="",
    )
    try:
        yield agent
    finally:
        stopped = agent("stop", timeout_s=60)
        subprocess.run(["rm", "-rf", str(agent.rsctmp)], check=True)
        assert stopped.rc == 0, stopped


def test_lifecycle_against_the_real_cinder_api(api: Agent, openstack: OpenStack) -> None:
    assert api("validate-all").rc == 0
    assert api("monitor", interval_s=0).rc == 7
    start = api("start", timeout_s=120)
    assert start.rc == 0, start
    leader = api.pid()
    status = Path(f"/proc/{leader}/status").read_text()
    uid = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1]
    assert int(uid) == openstack.service_user_ids()[0], "cinder-api runs as the cinder user"
    assert openstack.admin.password.encode() not in Path(f"/proc/{leader}/environ").read_bytes()

    first = api("monitor")
    assert first.rc == 0, first
    walls = []
    for _ in range(20):
        run = api("monitor")
        assert run.rc == 0, run
        walls.append(run.seconds)
    print(
        f"\nrecurring monitor, cached token, real cinder-api: median {statistics.median(walls) * 1000:.1f} ms"
    )

    # kill -9 of the whole daemon: nothing of ours runs.
    members = session_members(leader)
    assert len(members) >= 1
    for pid in members:
        os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not session_members(leader), 5)
    dead = api("monitor")
    assert dead.rc == 7, dead

    again = api("start", timeout_s=120)
    assert again.rc == 0, again
    leader = api.pid()

    # A hung API (every process stopped): 1, answered before the operation timeout.
    members = session_members(leader)
    for pid in members:
        os.kill(pid, signal.SIGSTOP)
    try:
        hung = api("monitor", timeout_s=8)
        assert hung.rc == 1, hung
        assert hung.seconds < 8
        assert "does not answer" in hung.reason
    finally:
        for pid in members:
            os.kill(pid, signal.SIGCONT)

    stop = api("stop", timeout_s=60)
    assert stop.rc == 0, stop
    assert session_members(leader) == []
    assert process_state(leader) is None
    assert api("monitor").rc == 7


def test_parent_killed_alone_is_a_failure_until_its_workers_are_gone(api: Agent) -> None:
    assert api("start", timeout_s=120).rc == 0
    leader = api.pid()
    workers = [p for p in session_members(leader) if p != leader]
    os.kill(leader, signal.SIGKILL)
    assert wait_until(lambda: process_state(leader) is None, 5)
    run = api("monitor")
    if workers and session_members(leader):
        assert run.rc == 1, run
        assert "is gone but" in run.reason
    else:
        assert run.rc == 7, run
    assert api("stop").rc == 0
    assert session_members(leader) == []


def test_keystone_outage_is_not_a_cinder_api_failure(api: Agent, openstack: OpenStack) -> None:
    assert api("start", timeout_s=120).rc == 0
    openstack.stop_keystone()
    try:
        for token in api.rsctmp.glob("*.token"):
            token.unlink()  # force the path that must ask Keystone
        run = api("monitor")
        assert run.rc == 0, run
        assert "WARNING" in run.stderr and "Keystone" in run.stderr
    finally:
        openstack.start_keystone()
    assert api("monitor").rc == 0


def test_ocf_tester_passes_against_the_real_cinder_api(openstack: OpenStack, agents_dir: Path) -> None:
    run, cleanup, took = ocf_tester_on(openstack, agents_dir, "cinder-api", timeout=600)
    print(f"\nocf-tester against the real cinder-api: {took:.1f} s")
    assert "passed all tests" in run.stdout, run.stdout + run.stderr
    assert run.returncode == 0
    assert cleanup.rc == 0
