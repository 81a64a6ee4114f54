"""cinder-volume, cinder-scheduler and cinder-backup agents against the real services.

Real RabbitMQ, Keystone, and cinder 29 from PyPI (lab/stack): cinder-volume with two fake
backends (fake1, fake2), host = cinder-cluster, report_interval 2 s, service_down_time 10 s.
The heartbeat check asks os-services of a real cinder-api, run through our own cinder-api
agent; credentials come from cinder.conf's [keystone_authtoken], as in ocf-tester's runs.
"""

import concurrent.futures
import configparser
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import psutil
import pytest

from lab.host import children, open_dir, process_state, session_members, wait_until
from lab.resource import Agent, AgentRun, stack_resource, stop_resource
from lab.stack.openstack import CINDER_HOST, OpenStack
from tests.integration.conftest import ocf_tester_on

OCF_1_1 = {"OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1"}
SERVICES = {
    "cinder-volume": [f"{CINDER_HOST}@fake1", f"{CINDER_HOST}@fake2"],
    "cinder-scheduler": [CINDER_HOST],
    "cinder-backup": [CINDER_HOST],
}


def median_monitor_ms(agent: Agent, runs: int = 20) -> float:
    walls = []
    for _ in range(runs):
        run = agent("monitor")
        assert run.rc == 0, run
        walls.append(run.seconds)
    return statistics.median(walls) * 1000


@pytest.fixture(scope="module")
def cinder_api(openstack: OpenStack, agents_dir: Path) -> Iterator[Agent]:
    """A cinder-api for os-services, run by our own agent; the services' rows removed after."""
    rsctmp = open_dir("cinder-ocf-rsctmp-")
    api = stack_resource(openstack, agents_dir, "cinder-api", rsctmp, "p_cinder-api-for-rpc")
    start = api("start", timeout_s=120)
    assert start.rc == 0, start
    try:
        yield api
    finally:
        stopped = api("stop", timeout_s=60)
        subprocess.run(["rm", "-rf", str(rsctmp)], check=True)
        for binary, hosts in SERVICES.items():
            for host in hosts:
                openstack.cinder_manage("service", "remove", binary, host)
        assert stopped.rc == 0, stopped


@pytest.fixture
def resource(openstack: OpenStack, agents_dir: Path, cinder_api: Agent) -> Iterator[Callable[..., Agent]]:
    """Resources of the RPC agents; each is stopped, and must leave nothing behind."""
    made: List[Agent] = []

    def factory(name: str, **params: str) -> Agent:
        agent = stack_resource(openstack, agents_dir, name, open_dir("cinder-ocf-rsctmp-"), **params)
        made.append(agent)
        return agent

    try:
        yield factory
    finally:
        failures: List[object] = []
        for agent in made:
            stopped = stop_resource(agent, timeout_s=60, grace_s=10)
            if stopped.run.rc != 0:
                failures.append(stopped.run)
            if stopped.left:
                failures.append(f"{agent.path.name}: processes left: {stopped.left}")
            subprocess.run(["rm", "-rf", str(agent.rsctmp)], check=True)
        assert not failures, failures


def daemon_log(agent: Agent) -> List[str]:
    """The daemon's own log (cinder.conf log_dir), where cinder writes why it died."""
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(agent.params["config"])
    log = Path(conf.get("DEFAULT", "log_dir", fallback="/nonexistent")) / f"{agent.path.name}.log"
    try:
        return log.read_text(errors="replace").splitlines()
    except OSError:
        return []


def started(agent: Agent) -> AgentRun:
    run = agent("start", timeout_s=120)
    assert run.rc == 0, f"start failed: {run.reason}\n" + "\n".join(daemon_log(agent)[-8:])
    print(f"\n{agent.path.name} start: {run.seconds:.1f} s")
    return run


def test_cinder_volume_lifecycle_and_backend_faults(resource: Callable[..., Agent]) -> None:
    volume = resource("cinder-volume")
    validate = volume("validate-all")
    assert validate.rc == 0, validate
    assert "WARNING" not in validate.stderr, "cinder.conf sets host: no warning expected"
    assert volume("monitor", interval_s=0).rc == 7
    started(volume)
    leader = volume.pid()
    assert len(children(leader)) == 2, "one process per backend"
    first = volume("monitor")
    assert first.rc == 0, first

    # SIGKILL of a backend child: the parent replaces it; the resource stays healthy, no restart.
    victim = children(leader)[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: process_state(victim) is None, 5)
    healed = volume("monitor")
    assert healed.rc == 0, healed
    assert volume.pid() == leader and len(children(leader)) == 2
    assert wait_until(lambda: volume("monitor").stderr.count("INFO: amqp") == 0, 30), "new child connects"

    # SIGSTOP of a backend child: alive and connected but silent; 1 once os-services says down.
    silent = children(leader)[-1]
    os.kill(silent, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        while True:
            run = volume("monitor")
            if run.rc != 0:
                break
            assert time.monotonic() - stopped_at < 60, "os-services never reported the backend down"
            time.sleep(0.5)
        elapsed = time.monotonic() - stopped_at
        print(f"SIGSTOP of a cinder-volume backend child -> monitor 1 after {elapsed:.1f} s")
        assert run.rc == 1, run
        assert "down in os-services" in run.reason
    finally:
        os.kill(silent, signal.SIGCONT)
    # Continued, it reports again: healthy without a restart.
    assert wait_until(lambda: volume("monitor").rc == 0, 30)
    assert volume.pid() == leader
    print(f"cinder-volume monitor: median {median_monitor_ms(volume):.1f} ms of 20")

    stop = volume("stop", timeout_s=60)
    assert stop.rc == 0, stop
    assert session_members(leader) == []
    assert volume("monitor").rc == 7


def test_depth_20_sees_a_silent_backend_and_scheduler_before_their_heartbeat(
    resource: Callable[..., Agent],
) -> None:
    """A SIGSTOPped process stays alive, connected and `up` in os-services until
    service_down_time; the depth-20 round trip through cinder-api and the RPC bus sees it
    within check_timeout (the heartbeat path's time: test_cinder_volume_lifecycle_...)."""
    check_timeout = 4
    deep = {"OCF_CHECK_LEVEL": "20", **OCF_1_1}
    volume = resource("cinder-volume", check_timeout=str(check_timeout))
    scheduler = resource("cinder-scheduler", check_timeout=str(check_timeout))
    started(scheduler)
    started(volume)
    for agent in (volume, scheduler):
        # Until the scheduler has heard of the backends, their first answers may lag.
        assert wait_until(lambda agent=agent: agent("monitor", extra_env=deep).rc == 0, 60, step_s=1)
    silent_ones = [("backend process", volume, children(volume.pid())[-1]),
                   ("scheduler", scheduler, scheduler.pid())]  # fmt: skip
    for what, agent, silent in silent_ones:
        os.kill(silent, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            shallow = agent("monitor")
            run = agent("monitor", extra_env=deep, timeout_s=60)
            seen = time.monotonic() - stopped_at
        finally:
            os.kill(silent, signal.SIGCONT)
        assert shallow.rc == 0, "depth 0 cannot see it yet: the heartbeat is still up"
        assert run.rc == 1, run
        assert "does not answer" in run.reason and "over the RPC bus" in run.reason, run
        print(f"\nSIGSTOP of the {what} -> depth-20 monitor 1 after {seen:.1f} s "
              f"(check_timeout {check_timeout} s): {run.reason}")  # fmt: skip
        assert seen <= check_timeout + 2 + shallow.seconds, seen
        assert wait_until(lambda agent=agent: agent("monitor", extra_env=deep).rc == 0, 60, step_s=1)


def test_cinder_volume_parent_killed_while_its_children_live(resource: Callable[..., Agent]) -> None:
    volume = resource("cinder-volume")
    started(volume)
    leader = volume.pid()
    kids = children(leader)
    # oslo.service children end themselves ~0.5 s after their parent's death (they watch a
    # pipe): freeze them so that they outlive it, as a hung child would.
    for pid in kids:
        os.kill(pid, signal.SIGSTOP)
    os.kill(leader, signal.SIGKILL)
    assert wait_until(lambda: process_state(leader) is None, 5)
    run = volume("monitor")
    assert run.rc == 1, run
    assert "is gone but 2 of its processes still run" in run.reason
    stop = volume("stop", timeout_s=60)
    assert stop.rc == 0, stop
    assert stop.seconds < 10
    assert all(process_state(pid) is None for pid in kids)
    assert session_members(leader) == []
    assert volume("monitor").rc == 7


@pytest.mark.parametrize("name", ["cinder-scheduler", "cinder-backup"])
def test_single_process_services(resource: Callable[..., Agent], name: str) -> None:
    agent = resource(name)
    assert agent("validate-all").rc == 0
    assert agent("monitor", interval_s=0).rc == 7
    started(agent)
    leader = agent.pid()
    run = agent("monitor")
    assert run.rc == 0, run
    time.sleep(5)  # the service's own start-up work competes for the 2 cores: let it settle
    print(f"{name} monitor: median {median_monitor_ms(agent):.1f} ms of 20")
    stop = agent("stop", timeout_s=60)
    assert stop.rc == 0, stop
    assert session_members(leader) == []
    assert agent("monitor").rc == 7


def test_rabbitmq_outage_is_a_warning_and_the_services_heal(
    resource: Callable[..., Agent], openstack: OpenStack
) -> None:
    grace = 8
    agents = [resource(name, start_grace=str(grace)) for name in SERVICES]
    leaders: Dict[str, int] = {}
    for agent in agents:
        started(agent)
        leaders[agent.path.name] = agent.pid()
    openstack.stop_rabbitmq()
    try:
        for agent in agents:
            # Past the grace (the services just started), the outage shows as a warning.
            def warned(agent: Agent = agent) -> bool:
                run = agent("monitor")
                assert run.rc == 0, run
                return "an outage of a dependency" in run.stderr and "WARNING" in run.stderr

            assert wait_until(warned, grace + 30, step_s=1), f"{agent.path.name}: no warning"
            # To a Pacemaker that speaks OCF 1.1, the same outage is degraded, with the reason.
            degraded = agent("monitor", extra_env=OCF_1_1)
            assert degraded.rc == 190 and "an outage of a dependency" in degraded.reason, degraded
    finally:
        openstack.start_rabbitmq()
    back = time.monotonic()
    healthy = set()
    while len(healthy) < len(agents):
        assert time.monotonic() - back < 120, f"not reconnected: {set(leaders) - healthy}"
        for agent in agents:
            run = agent("monitor")
            assert run.rc == 0, run  # reconnecting is never a failure
            if "WARNING" not in run.stderr and "INFO: amqp" not in run.stderr:
                healthy.add(agent.path.name)
        time.sleep(1)
    print(f"\nafter RabbitMQ came back, all three healthy again in {time.monotonic() - back:.1f} s")
    for agent in agents:
        assert agent.pid() == leaders[agent.path.name], "healed without a restart"


@pytest.mark.parametrize("name", list(SERVICES))
def test_ocf_tester_passes(openstack: OpenStack, agents_dir: Path, cinder_api: Agent, name: str) -> None:
    run, cleanup, took = ocf_tester_on(openstack, agents_dir, name, timeout=900)
    print(f"\nocf-tester against the real {name}: {took:.1f} s")
    assert "passed all tests" in run.stdout, run.stdout + run.stderr
    assert run.returncode == 0
    assert cleanup.rc == 0


# ---------------------------------------------------------------- one server per service host
# A second cinder-volume (or cinder-backup) of the same host, started by hand from a copy of the
# same cinder.conf (another file, so not this resource's copy, which the process scan finds), as
# a second node or a container would run it (issue 11, points 2 and 3).


class Elsewhere:
    """Servers of the stack's service host started outside the agent, as user cinder, each in a
    session of its own (ended at the end by that session, ours only)."""

    def __init__(self, openstack: OpenStack) -> None:
        self.openstack = openstack
        self.workdir = open_dir("cinder-ocf-elsewhere-")
        self.config = self.workdir / "cinder.conf"
        shutil.copy(openstack.cinder_conf, self.config)
        self.config.chmod(0o644)
        self.started: List[subprocess.Popen] = []

    def start(self, binary: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [str(self.openstack.cinder_bin(binary)), "--config-file", str(self.config)],
            user="cinder", start_new_session=True, cwd="/", stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin", "HOME": "/"},
        )  # fmt: skip
        self.started.append(proc)
        return proc

    def end(self, proc: subprocess.Popen) -> None:
        members = [p for p in psutil.process_iter() if _sid(p.pid) == proc.pid]
        for member in members:
            try:
                member.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        proc.wait(timeout=30)
        psutil.wait_procs(members, timeout=10)

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                self.end(proc)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _sid(pid: int) -> int:
    try:
        return os.getsid(pid)
    except OSError:
        return -1


@pytest.fixture
def elsewhere(openstack: OpenStack) -> Iterator[Elsewhere]:
    made = Elsewhere(openstack)
    try:
        yield made
    finally:
        made.close()


def first_failure(agent: Agent, within_s: float) -> Tuple[AgentRun, float]:
    began = time.monotonic()
    while time.monotonic() - began < within_s:
        run = agent("monitor")
        if run.rc != 0:
            return run, time.monotonic() - began
        time.sleep(0.5)
    raise AssertionError(f"the monitor never failed within {within_s} s")


@pytest.mark.parametrize("name", ["cinder-volume", "cinder-backup"])
def test_a_second_server_of_the_host_fails_the_monitor_and_blocks_a_start(
    resource: Callable[..., Agent], elsewhere: Elsewhere, name: str
) -> None:
    agent = resource(name)
    started(agent)
    healthy = agent("monitor")
    assert healthy.rc == 0, healthy
    assert "one server" not in healthy.stderr, healthy  # counted, not a warning
    # What the count costs a monitor (printed, not held: speed lives in make bench).
    guarded = median_monitor_ms(agent, runs=10)
    agent.params["guard_service_host"] = "false"
    unguarded = median_monitor_ms(agent, runs=10)
    agent.params.pop("guard_service_host")
    print(
        f"\n{name} monitor, median of 10: {guarded:.1f} ms counting the queue's consumers, "
        f"{unguarded:.1f} ms without"
    )

    other = elsewhere.start(name)
    run, seconds = first_failure(agent, within_s=60)
    print(f"\n{name}: a second server of {CINDER_HOST} seen by the monitor {seconds:.1f} s after it started")
    assert run.rc == 1, run
    reason = run.reason
    assert "a second server of the same service host runs elsewhere" in reason, run
    queue = (
        f"{name}.{CINDER_HOST}@fake1.{CINDER_HOST}" if name == "cinder-volume" else f"{name}.{CINDER_HOST}"
    )
    assert f"{queue} has 2 consumers" in reason, reason

    # Pacemaker's recovery: stop, then start here again, which refuses while the other reports.
    assert agent("stop", timeout_s=60).rc == 0
    began = time.monotonic()
    refused = agent("start", timeout_s=120)
    print(f"{name}: start refused after {time.monotonic() - began:.1f} s: {refused.reason}")
    assert refused.rc == 1, refused
    assert f"is served by another {name}" in refused.reason, refused
    assert agent.leader() is None, "start spawned a second server"

    # cinder-api unreachable: os-services cannot say, the broker's consumer count does.  The
    # other's consumers stay, so start waits for them to leave until its time is out.
    with unreachable_url() as url:
        agent.params["url"] = url
        refused = agent("start", timeout_s=25)
        print(f"{name}: os-services unreadable, start refused in {refused.seconds:.1f} s: {refused.reason}")
        assert refused.rc == 1, refused
        assert f"may be served by another {name}" in refused.reason, refused
        assert f"{queue}: 1 consumer" in refused.reason, refused
        assert "the start timeout ended before that bound" in refused.reason, refused
        assert agent.leader() is None, "start spawned a second server"

        # The other one gone while start waits: its consumers leave with its connections, and
        # the start proceeds (os-services still unread).
        log = agent.rsctmp / "start.log"  # HA_LOGFILE: what start says while it runs
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(agent, "start", timeout_s=120, extra_env={"HA_LOGFILE": str(log)})
            assert wait_until(lambda: waiting.done() or "for them to leave" in read(log), 30), read(log)
            ended = time.monotonic()
            elsewhere.end(other)
            run = waiting.result()
        assert run.rc == 0, run
        assert "the broker counts no consumer" in read(log), read(log)
        print(f"{name}: start {time.monotonic() - ended:.1f} s after the other server ended")
        assert agent("stop", timeout_s=60).rc == 0
    agent.params.pop("url")

    # os-services readable again: the other's heartbeat has stopped advancing, start proceeds.
    began = time.monotonic()
    started(agent)
    print(f"{name}: start once the other server was gone: {time.monotonic() - began:.1f} s")
    assert wait_until(lambda: agent("monitor").rc == 0, 30)


def read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


@contextlib.contextmanager
def unreachable_url() -> Iterator[str]:
    """A cinder-api URL that refuses connections: a port held bound, never listened on."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


def test_guard_off_lets_a_second_server_run(resource: Callable[..., Agent], elsewhere: Elsewhere) -> None:
    agent = resource("cinder-backup", guard_service_host="false")
    elsewhere.start("cinder-backup")
    started(agent)
    run = agent("monitor")
    assert run.rc == 0, run


# ---------------------------------------------------------------- active/active (issue 15)
CLONE = {"OCF_RESKEY_CRM_meta_clone_max": "2", "OCF_RESKEY_CRM_meta_clone_node_max": "1"}
FAKE_HA_DRIVER = "cinder.tests.fake_driver.FakeHAReplicatedLoggingVolumeDriver"


def test_a_clone_runs_only_drivers_that_declare_active_active(
    openstack: OpenStack, agents_dir: Path, resource: Callable[..., Agent]
) -> None:
    """cinder 29's own drivers, read by cinder's interpreter: the stack's fake driver does not
    declare SUPPORTS_ACTIVE_ACTIVE, its replicated HA sibling does."""
    workdir = open_dir("cinder-ocf-aa-")
    try:
        conf = configparser.ConfigParser(interpolation=None)
        conf.read(openstack.cinder_conf)
        conf.set("DEFAULT", "cluster", "cinder-aa")
        conf.remove_option("DEFAULT", "host")
        conf.set("coordination", "backend_url", "etcd3+http://127.0.0.1:2379")
        path = workdir / "cinder.conf"
        with path.open("w") as out:
            conf.write(out)
        path.chmod(0o644)
        agent = resource("cinder-volume", config=str(path))
        refused = agent("validate-all", timeout_s=30, extra_env=CLONE)
        print(f"\nvalidate-all of a clone, drivers imported by cinder's interpreter: {refused.seconds:.1f} s")
        assert refused.rc == 6, refused
        unsafe = "cinder.tests.fake_driver.FakeLoggingVolumeDriver (backend fake1, fake2) does not"
        assert unsafe in refused.reason, refused
        kept = agent("validate-all", timeout_s=30, extra_env=CLONE)
        print(f"validate-all again, the answer kept: {kept.seconds:.1f} s")
        assert kept.rc == 6, kept
        for backend in ("fake1", "fake2"):
            conf.set(backend, "volume_driver", FAKE_HA_DRIVER)
        with path.open("w") as out:
            conf.write(out)
        accepted = agent("validate-all", timeout_s=30, extra_env=CLONE)
        assert accepted.rc == 0, accepted
        assert "WARNING" not in accepted.stderr, accepted
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_consumer_counts_of_queues_missing_and_present_in_one_conversation(openstack: OpenStack) -> None:
    """The guard's count, against the real broker: queues that exist answer their consumers,
    missing ones None, in any order (a 404 closes the channel the declares share; the next
    queue must be asked on another).  Of each choice only the queues up to the first that
    exists are asked: one declare per backend, not one per queue a release may have."""
    import amqp  # noqa: PLC0415 - the broker's client, as the agents use it

    from cinder_ocf.openstack.broker import parse_transport_url  # noqa: PLC0415
    from cinder_ocf.openstack.queues import consumer_counts  # noqa: PLC0415

    transport = parse_transport_url(openstack.transport_url)
    host, port = transport.hosts[0][0], transport.hosts[0][1] or 5672
    user, password = transport.logins[0]
    names = [f"cocf-counted-{os.getpid()}-{n}" for n in range(3)]

    def connected() -> amqp.Connection:
        connection = amqp.Connection(host=f"{host}:{port}", userid=user, password=password, virtual_host="/")
        connection.connect()
        return connection

    connection = connected()
    try:
        channel = connection.channel()
        for name in names:
            channel.queue_declare(queue=name, auto_delete=False)
        channel.basic_consume(queue=names[1], callback=lambda message: None)
        channel.basic_consume(queue=names[2], callback=lambda message: None)
        other = connection.channel()
        other.basic_consume(queue=names[2], callback=lambda message: None)
        missing = [f"cocf-no-such-queue-{n}" for n in range(3)]
        asked = [missing[0], names[0], missing[1], missing[2], names[1], names[2]]
        counts = consumer_counts(transport, [(host, port)], [[queue] for queue in asked], False, "", 10.0)
        want = {missing[0]: None, names[0]: 0, missing[1]: None, missing[2]: None, names[1]: 1, names[2]: 2}
        assert counts == want
        choices = [[missing[0], names[1], names[2]], [missing[1], missing[2]], [names[0], names[2]]]
        counts = consumer_counts(transport, [(host, port)], choices, False, "", 10.0)
        assert counts == {missing[0]: None, names[1]: 1, missing[1]: None, missing[2]: None, names[0]: 0}
    finally:
        connection.close()  # the consumers first: a queue deleted under them cancels them
        cleanup = connected()
        channel = cleanup.channel()
        for name in names:
            channel.queue_delete(queue=name)
        cleanup.close()
