"""One service host, one server: start's guard against a second cinder-volume or primitive
cinder-backup (issue 11, point 2), against a fake os-services that stands in for cinder-api.

The actions run in-process with a clock the test moves (tests/unit/inprocess.py): the wait
for a heartbeat that may or may not come (up to report_interval + 1 s) costs no real time,
and the clock's offset tells how long start waited.  The broker's consumer count, the other
half of the guard, needs a real broker: tests/integration/test_rpc_agents.py.
"""

import datetime
import re
from pathlib import Path
from typing import Iterator

import pytest

from lab.host import process_state
from tests.unit.inprocess import FakeClock, act
from tests.unit.resources import Resource

GUARDED = ["cinder-volume", "cinder-backup"]
REPORT_INTERVAL = 10


@pytest.fixture(params=GUARDED)
def res(request: pytest.FixtureRequest, agents_dir: Path) -> Iterator[Resource]:
    resource = Resource(agents_dir, request.param, runner="inprocess")
    resource.agent.params["guard_service_host"] = "true"
    resource.configure(default={"report_interval": str(REPORT_INTERVAL)})
    try:
        yield resource
    finally:
        resource.close()


def hosts(res: Resource) -> list:
    assert res.services is not None
    return list(res.services.rows)


def freeze(res: Resource, seconds_ago: float) -> None:
    """Every row last reported seconds_ago (its server stopped then: a crash, a fence), and
    reports again once this resource's daemon runs."""
    assert res.services is not None
    at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds_ago)
    for host in hosts(res):
        res.services.rows[host] = "serving"
        res.services.frozen_at[host] = at
    res.services.serving = lambda: res.pid() is not None and process_state(res.pid()) is not None


def start(res: Resource, clock: FakeClock, timeout_s: float = 60, **env: str):  # type: ignore[no-untyped-def]
    return act(res.agent, "start", clock, timeout_s=timeout_s, extra_env=env)


def test_start_refuses_while_another_server_reports(res: Resource) -> None:
    clock = FakeClock()  # every row advances at each request: a live server elsewhere
    run = start(res, clock)
    assert run.code == 1, run
    first = hosts(res)[0]
    assert f"{first} is served by another {res.name}" in run.reason, run
    assert "refusing to start a second server" in run.reason
    assert res.pid() is None, "start spawned a daemon beside the other server"
    assert clock.offset <= 1.5, clock.offset  # one poll: the heartbeat advanced at once


@pytest.mark.parametrize("quiet_first", [False, True], ids=["quiet-row-last", "quiet-row-first"])
def test_start_refuses_while_another_server_reports_beside_a_quiet_row(
    res: Resource, quiet_first: bool
) -> None:
    """A host whose servers once started at once has two rows (cinder makes one each): the one
    long quiet must not hide the other advancing."""
    assert res.services is not None
    res.services.extra_rows = [(host, "down", 3600.0) for host in hosts(res)]
    res.services.extra_first = quiet_first
    run = start(res, FakeClock())
    assert run.code == 1, run
    assert "refusing to start a second server" in run.reason, run
    assert res.pid() is None, "start spawned a daemon beside the other server"


def test_a_stopped_heartbeat_does_not_block_and_costs_one_interval(res: Resource) -> None:
    freeze(res, seconds_ago=1)
    # The fake clock's wait ages what starts after it too: a grace beyond the wait.
    res.agent.params["start_grace"] = str(3 * REPORT_INTERVAL)
    clock = FakeClock()
    run = start(res, clock)
    assert run.code == 0, run
    assert "no server reported" in run.log, run.log
    # The guard waited until the report due by now did not come: the last report (1 s ago,
    # less the set-up's time) + report_interval + 1 s; then start waited for its own daemon.
    said = re.search(r"waiting up to ([0-9.]+) s", run.log)
    assert said is not None, run.log
    assert REPORT_INTERVAL - 2 <= float(said.group(1)) <= REPORT_INTERVAL + 1, said.group(0)
    assert float(said.group(1)) - 1 <= clock.offset, clock.offset
    assert res.pid() is not None and process_state(res.pid()) is not None


def test_a_heartbeat_older_than_one_interval_costs_no_wait(res: Resource) -> None:
    freeze(res, seconds_ago=REPORT_INTERVAL + 5)
    clock = FakeClock()
    run = start(res, clock)
    assert run.code == 0, run
    assert "waiting up to" not in run.log, run.log
    assert clock.offset < REPORT_INTERVAL / 2, clock.offset


def test_a_restart_here_waits_too(res: Resource) -> None:
    """The last report before this resource's own stop may have been another server's too
    (both reported): a start right after a stop waits like any other."""
    freeze(res, seconds_ago=3600)  # never served until this resource's daemon runs
    res.agent.params["start_grace"] = str(3 * REPORT_INTERVAL)
    first = start(res, FakeClock())
    assert first.code == 0, first
    assert "waiting up to" not in first.log  # the rows were an hour old
    assert act(res.agent, "monitor", FakeClock()).code == 0  # the rows advance now
    assert act(res.agent, "stop", FakeClock()).code == 0
    again = start(res, FakeClock())
    assert again.code == 0, again
    assert "waiting up to" in again.log and "no server reported" in again.log, again.log


def test_guard_off_starts_beside_a_reporting_server(res: Resource) -> None:
    res.agent.params["guard_service_host"] = "false"
    run = start(res, FakeClock())
    assert run.code == 0, run
    assert "served by another" not in run.log


@pytest.mark.parametrize("unavailable", [{1, 2, 3}, {2, 3}], ids=["first-looks", "while-waiting"])
def test_a_failed_look_is_made_again(res: Resource, unavailable: set) -> None:
    """cinder-api answering nothing for a few seconds (it moves with the VIP in the same
    transition as this start) must not let a second server start unseen: the class of
    one failed request, before the wait or within it."""
    assert res.services is not None
    res.services.unavailable = unavailable
    clock = FakeClock()  # the other server's rows advance at every answered request
    run = start(res, clock)
    assert run.code == 1, run
    assert "is served by another" in run.reason, run
    assert "HTTP 503" in run.log and "starting anyway" not in run.log, run.log
    assert res.pid() is None, "start spawned a daemon beside the other server"
    assert clock.offset <= len(unavailable) + 1.5, clock.offset


def test_os_services_failing_does_not_block_a_failover(res: Resource) -> None:
    """A cinder-api that stays down is a dependency's outage: start goes ahead, after one
    report_interval + 1 s of asking again."""
    assert res.services is not None
    res.services.status = 500
    res.agent.params["start_grace"] = str(3 * REPORT_INTERVAL)  # the clock's wait ages the start
    clock = FakeClock()
    run = start(res, clock)
    assert run.code == 0, run
    assert "HTTP 500" in run.log, run.log
    # The broker asked instead (the fake one cannot be: tests/integration has a real one).
    assert "the broker cannot count the consumers either" in run.log, run.log
    assert "starting anyway (a dependency's outage" in run.log, run.log
    assert REPORT_INTERVAL - 1 <= clock.offset <= REPORT_INTERVAL + 2, clock.offset


def test_looks_failing_once_the_report_was_due_start_after_one_more_interval(res: Resource) -> None:
    """A row that stopped (a crash) and a cinder-api that fails from the second look on: no
    look saw the silence after the report was due, so start asks for one more interval, then
    goes ahead with a warning."""
    assert res.services is not None
    freeze(res, seconds_ago=1)
    res.agent.params["start_grace"] = str(4 * REPORT_INTERVAL)
    res.services.unavailable = set(range(2, 200))
    clock = FakeClock()
    run = start(res, clock, timeout_s=120)
    assert run.code == 0, run
    assert "reports, and the broker cannot count the consumers either" in run.log, run.log
    assert "starting anyway" in run.log, run.log
    assert run.log.count("looking again once a second") == 1, run.log  # said once, not per look
    assert "no server reported" not in run.log, run.log
    assert 2 * REPORT_INTERVAL - 1 <= clock.offset <= 2 * (REPORT_INTERVAL + 1) + 1, clock.offset


def test_a_start_timeout_shorter_than_the_wait_says_so(res: Resource) -> None:
    freeze(res, seconds_ago=0.5)
    run = start(res, FakeClock(), timeout_s=6)
    assert run.code == 1, run
    assert "operation timeout ended while waiting whether" in run.reason, run.log
    assert res.pid() is None


def test_a_cloned_backup_is_not_guarded(agents_dir: Path) -> None:
    res = Resource(agents_dir, "cinder-backup", runner="inprocess")
    res.agent.params["guard_service_host"] = "true"
    try:
        run = start(res, FakeClock(), OCF_RESKEY_CRM_meta_clone_max="2")
        assert run.code == 0, run  # one server per node by design, each its own host
        assert "served by another" not in run.log
    finally:
        res.close()
