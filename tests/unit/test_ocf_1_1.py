"""OCF 1.1 where the caller speaks it (issue 12): a dependency's outage answered degraded (190)
to a recurring monitor, reload-agent, validate-all at depth 0, and the depth-20 round trips
over the RPC bus, against the tests' fakes (the real stack: tests/integration/test_ocf_1_1.py).
"""

from pathlib import Path
from typing import Iterator

import pytest

from tests.unit.resources import Resource

OCF_1_1 = {"OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1"}
DEEP = {"OCF_CHECK_LEVEL": "20"}
DEGRADED = 190


@pytest.fixture
def volume(agents_dir: Path) -> Iterator[Resource]:
    resource = Resource(agents_dir, "cinder-volume")
    try:
        resource.start()
        yield resource
    finally:
        resource.close()


def keystone_down(res: Resource) -> None:
    res.keystone.mode = "error500"
    res.token_cache().unlink(missing_ok=True)  # else a cached token still works


# ---------------------------------------------------------------- degraded
def test_a_dependency_outage_is_degraded_to_a_1_1_recurring_monitor_only(res: Resource) -> None:
    res.start()
    keystone_down(res)
    run = res.run("monitor", extra_env=OCF_1_1)
    assert run.rc == DEGRADED, run
    assert "Keystone" in run.reason, run  # crm_mon shows why, under Failed Resource Actions
    # ocf-tester and Pacemaker before 2.1 set no version; a probe's 190 would leave the
    # resource shown as "(Monitoring)": both get today's 0 and the warning in the log.
    for env, interval in (({}, 10.0), (OCF_1_1, 0.0)):
        quiet = res.run("monitor", extra_env=env, interval_s=interval)
        assert quiet.rc == 0, quiet
        assert quiet.reason == "" and "WARNING" in quiet.stderr and "Keystone" in quiet.stderr, quiet
    res.keystone.mode = "ok"
    assert res.run("monitor", extra_env=OCF_1_1).rc == 0, "degraded must clear by itself"


def test_status_and_a_failure_keep_their_codes_under_1_1(volume: Resource) -> None:
    assert volume.run("status", extra_env=OCF_1_1).rc == 0
    assert volume.services is not None
    volume.services.go_down("cluster@b1")
    run = volume.run("monitor", extra_env=OCF_1_1)
    assert run.rc == 1 and "down in os-services" in run.reason, run


# ---------------------------------------------------------------- reload-agent
def test_reload_agent_touches_no_process_and_applies_the_next_monitor(volume: Resource) -> None:
    leader, members = volume.pid(), volume.members()
    assert volume.run("monitor").rc == 0
    token = volume.token_cache().read_text()
    requests = volume.keystone.token_requests
    volume.agent.params["check_timeout"] = "3"
    run = volume.run("reload-agent", extra_env=OCF_1_1)
    assert run.rc == 0, run
    assert (volume.pid(), volume.members()) == (leader, members)
    assert volume.run("monitor").rc == 0
    # check_timeout is none of what the token derives from: kept, no new Keystone request.
    assert volume.token_cache().read_text() == token
    assert volume.keystone.token_requests == requests
    # A changed credential is: the next monitor authenticates again.
    volume.agent.params["os_project_name"] = "monitoring"
    assert volume.run("reload-agent", extra_env=OCF_1_1).rc == 0
    assert volume.run("monitor").rc == 0
    assert volume.keystone.token_requests == requests + 1
    # A changed url is used by the next monitor, not the one cached with cinder.conf's facts.
    volume.agent.params["url"] = "http://127.0.0.1:9/"
    assert volume.run("reload-agent", extra_env=OCF_1_1).rc == 0
    moved = volume.run("monitor")
    assert moved.rc == 0 and "127.0.0.1:9" in moved.stderr, moved
    assert volume.pid() == leader


@pytest.mark.parametrize(("name", "value"), [("check_timeout", "ten"), ("url", "ftp://x/"),
                                             ("start_grace", "0")])  # fmt: skip
def test_reload_agent_refuses_a_bad_value_as_start_would(volume: Resource, name: str, value: str) -> None:
    volume.agent.params[name] = value
    run = volume.run("reload-agent", extra_env=OCF_1_1)
    assert run.rc == 6 and name in run.reason, run
    assert volume.pid() is not None


# ---------------------------------------------------------------- validate-all depth 0
def test_validate_all_at_depth_0_checks_the_parameters_alone(res: Resource) -> None:
    res.agent.params["binary"] = "/nonexistent/cinder"
    res.agent.params["config"] = "/nonexistent/cinder.conf"
    assert res.run("validate-all", extra_env={"OCF_CHECK_LEVEL": "0"}).rc == 0
    for level in ({}, {"OCF_CHECK_LEVEL": "10"}):
        assert res.run("validate-all", extra_env=level).rc == 5  # this node: no binary
    res.agent.params["pid"] = "relative.pid"
    run = res.run("validate-all", extra_env={"OCF_CHECK_LEVEL": "0"})
    assert run.rc == 6 and "pid 'relative.pid' is not an absolute path" in run.reason, run


# ---------------------------------------------------------------- depth 20
def test_depth_20_asks_each_backend_over_the_rpc_bus(volume: Resource) -> None:
    services = volume.services
    assert services is not None
    assert volume.run("monitor").rc == 0
    assert services.asked == [], "depth 0 must not cross the RPC bus"
    assert volume.run("monitor", extra_env=DEEP).rc == 0
    assert services.asked == ["/capabilities/cluster@b1", "/capabilities/cluster@b2"]


@pytest.mark.parametrize("fault", ["hang", "502", "500"])
def test_depth_20_fails_a_backend_that_does_not_answer_while_the_bus_works(
    volume: Resource, fault: str
) -> None:
    assert volume.services is not None
    volume.services.capabilities["cluster@b2"] = fault
    run = volume.run("monitor", extra_env={**DEEP, **OCF_1_1})
    assert run.rc == 1, run
    assert "cluster@b2" in run.reason and "cluster@b1" not in run.reason, run
    assert "get_pools" in run.reason, run  # what showed that the bus works
    assert volume.services.asked[-1].endswith("get_pools")


def test_depth_20_blames_the_bus_when_the_scheduler_is_silent_too(volume: Resource) -> None:
    assert volume.services is not None
    volume.services.capabilities["cluster@b1"] = "hang"
    volume.services.pools = "hang"
    run = volume.run("monitor", extra_env={**DEEP, **OCF_1_1})
    assert run.rc == DEGRADED and "the RPC bus or cinder-api is at fault" in run.reason, run
    assert volume.run("monitor", extra_env=DEEP).rc == 0  # 1.0: 0 and the warning


def test_depth_20_waits_while_a_dependency_is_out(volume: Resource) -> None:
    assert volume.services is not None
    volume.services.capabilities["cluster@b1"] = "hang"
    keystone_down(volume)
    run = volume.run("monitor", extra_env={**DEEP, **OCF_1_1})
    assert run.rc == DEGRADED and "Keystone" in run.reason, run
    assert volume.services.asked == [], "no round trip is tried while a dependency is out"


def test_depth_20_without_credentials_is_skipped(agents_dir: Path) -> None:
    res = Resource(agents_dir, "cinder-volume", heartbeat=False)
    try:
        res.start()
        run = res.run("monitor", extra_env={**DEEP, **OCF_1_1})
        assert run.rc == 0 and run.reason == "", run
    finally:
        res.close()


@pytest.mark.parametrize("name", ["cinder-scheduler", "cinder-schedule"])
def test_depth_20_asks_a_scheduler_for_its_pools(agents_dir: Path, name: str) -> None:
    res = Resource(agents_dir, name)
    try:
        res.start()
        assert res.services is not None
        assert res.run("monitor", extra_env=DEEP).rc == 0
        assert res.services.asked == ["/scheduler-stats/get_pools"]
        # Unanswered, the broker must say whether this scheduler is the only one that could
        # have: the fake broker is no AMQP broker, so it cannot, and nothing is blamed.
        res.services.pools = "hang"
        run = res.run("monitor", extra_env={**DEEP, **OCF_1_1})
        assert run.rc == DEGRADED and "cannot say who listens" in run.reason, run
    finally:
        res.close()


def test_depth_20_of_cinder_api_is_degraded_without_the_rpc_bus(agents_dir: Path) -> None:
    res = Resource(agents_dir, "cinder-api")
    try:
        res.start()
        assert res.run("monitor", extra_env=DEEP).rc == 0
        res.configure(rpc="hang")
        run = res.run("monitor", extra_env={**DEEP, **OCF_1_1})
        assert run.rc == DEGRADED and "no answer from a cinder-scheduler" in run.reason, run
        res.configure(rpc="500")
        assert res.run("monitor", extra_env=DEEP).rc == 0  # never 1: restarting it fixes nothing
        # No scheduler up to answer (a cluster's start runs cinder-api's first monitor before
        # any scheduler): not asked, not degraded.
        for state in ("down", "none"):
            res.configure(rpc="hang", scheduler=state)
            quiet = res.run("monitor", extra_env={**DEEP, **OCF_1_1})
            assert quiet.rc == 0 and quiet.reason == "", quiet
    finally:
        res.close()
