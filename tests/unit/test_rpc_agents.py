"""cinder-volume, cinder-scheduler and cinder-backup agents against a fake daemon, broker and API.

The fake daemon (tests/fakes/fake_cinder_rpc.py) forks one child per backend like
cinder-volume and connects to a TCP listener of the test playing the broker; a fake os-services
API and Keystone stand for the heartbeat.  The real services are in tests/integration.
"""

import io
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

from cinder_ocf.agents import AGENTS, service
from cinder_ocf.checks.rpc import _epoch
from cinder_ocf.metadata import render_metadata
from cinder_ocf.openstack import broker as amqp
from cinder_ocf.supervisor.processes import established_peers
from lab.host import open_dir, process_state, session_members, wait_until
from lab.resource import Agent, stop_resource
from tests.conftest import ROOT, ocf_tester
from tests.fakes.broker import FakeBroker, FakeServices
from tests.fakes.keystone import FakeKeystone
from tests.unit.inprocess import FakeClock, act
from tests.unit.resources import CUT_SHORT

RABBIT_PASSWORD = "Rabbit-s3cret-pw"
MONITOR_PASSWORD = "Monitor-s3cret-pw"
RPC_AGENTS = ["cinder-volume", "cinder-scheduler", "cinder-backup", "cinder-schedule"]


# ---------------------------------------------------------------- transport_url


@pytest.mark.parametrize(
    ("url", "hosts", "tls"),
    [
        ("rabbit://u:p@h1:5672,u:p@h2:5673/vhost?ssl=1", [("h1", 5672), ("h2", 5673)], True),
        ("rabbit://u:pw@[::1]:5671/", [("::1", 5671)], None),
        ("rabbit://u:pw@[fd00::5],u:pw@[fd00::6]:5672//", [("fd00::5", None), ("fd00::6", 5672)], None),
        ("rabbit://h1,h2/?ssl=false&heartbeat=30", [("h1", None), ("h2", None)], False),
        ("rabbit://openstack:p%40ss%2Fw@rabbit.example:5672/", [("rabbit.example", 5672)], None),
        ("kombu://u:p@10.0.0.1", [("10.0.0.1", None)], None),
        ("", [("localhost", None)], None),
    ],
)
def test_transport_url_hosts_ports_and_tls(url: str, hosts: list, tls: object) -> None:
    transport = amqp.parse_transport_url(url)
    assert transport.hosts == hosts
    assert transport.tls is tls
    assert transport.is_amqp


def test_transport_url_passwords_are_known_for_redaction() -> None:
    transport = amqp.parse_transport_url("rabbit://u:p%40ss%2Fw@h:5672,v:other-pw@g/")
    assert {"p%40ss%2Fw", "p@ss/w", "other-pw"} <= set(transport.secrets)


@pytest.mark.parametrize(
    "url",
    [
        "rabbit://h:99999/",
        "rabbit://h:0/",
        "rabbit://[::1/",
        "rabbit://u:p@:5672/",
        "no-scheme",
        "rabbit://h/?ssl=maybe",
    ],
)
def test_bad_transport_urls_are_refused(url: str) -> None:
    with pytest.raises(amqp.TransportError):
        amqp.parse_transport_url(url)


def test_kafka_is_not_an_amqp_broker() -> None:
    assert not amqp.parse_transport_url("kafka://k1:9092/").is_amqp


@pytest.mark.parametrize(
    ("url", "conf_tls", "override", "expected"),
    [
        ("rabbit://h/", False, None, [("h", 5672)]),
        # oslo.messaging connects to 5672 unless told otherwise, TLS or not; 5671 counts with TLS.
        ("rabbit://h/", True, None, [("h", 5672), ("h", 5671)]),
        ("rabbit://h/?ssl=1", False, None, [("h", 5672), ("h", 5671)]),
        ("rabbit://h/?ssl=0", True, None, [("h", 5672)]),  # the URL wins, as in oslo.messaging
        ("rabbit://h:5671,[::1]:15672/", True, None, [("h", 5671), ("::1", 15672)]),
        ("rabbit://h:5671,g/", True, 25672, [("h", 25672), ("g", 25672)]),  # amqp_server_port
    ],
)
def test_broker_endpoints(url: str, conf_tls: bool, override: object, expected: list) -> None:
    endpoints = amqp.broker_endpoints(amqp.parse_transport_url(url), conf_tls, override)  # type: ignore[arg-type]
    assert endpoints == expected


def test_resolve_and_match_connections_of_a_process() -> None:
    addresses, problems = amqp.resolve(
        [("localhost", 5672), ("127.0.0.1", 5671), ("no-such-host.invalid", 1)]
    )
    assert ("127.0.0.1", 5672) in addresses and ("127.0.0.1", 5671) in addresses
    assert problems and problems[0].startswith("no-such-host.invalid")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        assert amqp.first_reachable([("127.0.0.1", port)], 1) == ("127.0.0.1", port)
        with socket.create_connection(("127.0.0.1", port)):
            assert ("127.0.0.1", port) in established_peers([os.getpid()])[os.getpid()]
    finally:
        listener.close()
    assert amqp.first_reachable([("127.0.0.1", port)], 1) is None
    assert established_peers([2**22 + 1]) == {2**22 + 1: set()}, "a process that does not exist has none"


def test_ipv4_peers_of_ipv6_sockets_match_ipv4_brokers() -> None:
    with socket.socket(socket.AF_INET6) as listener:
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        listener.bind(("::", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with socket.socket(socket.AF_INET6) as client:
            client.connect(("::ffff:127.0.0.1", port))
            assert ("127.0.0.1", port) in established_peers([os.getpid()])[os.getpid()]


def test_os_services_timestamps() -> None:
    assert _epoch("1970-01-01T00:01:40.500000") == pytest.approx(100.5)
    assert _epoch("1970-01-01T00:01:40") == 100.0
    assert _epoch("2024-02-29T23:59:59.000001Z") == pytest.approx(1709251199.000001)
    assert _epoch(None) is None and _epoch("yesterday") is None and _epoch("2024-13-01T00:00:00") is None


# ---------------------------------------------------------------- meta-data


@pytest.mark.parametrize("name", RPC_AGENTS)
def test_rpc_meta_data_has_the_2013_parameters(name: str) -> None:
    spec = service(name).spec
    names = [p.name for p in spec.parameters]
    for old in ("binary", "config", "user", "pid", "amqp_server_port", "additional_parameters"):
        assert old in names
    assert spec.parameter("amqp_server_port").default == "5672"
    assert ("multibackend" in names) is (name == "cinder-volume")
    assert "start_grace" in names and "url" in names and "os_password" in names
    for param in spec.parameters:
        assert len(param.longdesc) > 30, f"{name} {param.name}: a description an operator can act on"


def test_the_2013_name_cinder_schedule_is_a_deprecated_alias() -> None:
    xml = render_metadata(service("cinder-schedule").spec)
    assert '<resource-agent name="cinder-schedule"' in xml
    assert "Deprecated" in xml and "cinder-scheduler" in xml
    assert service("cinder-schedule").spec.parameter("binary").default == "cinder-scheduler"


def test_every_agent_has_its_executable() -> None:
    assert set(AGENTS) == {p.name for p in (ROOT / "ocf").iterdir()}


# ---------------------------------------------------------------- the fake daemon


# oslo.messaging's longest pause between reconnection attempts: 1 s (default 31 s).  A
# service without a connection while the broker answers then fails after 1 + 5 s.
FAST_RECONNECT = {"rabbit_interval_max": "1", "kombu_reconnect_delay": "0"}


class FakeRpc:
    """One resource: the agent, the fake daemon's cinder.conf, a broker, Keystone and os-services."""

    def __init__(self, workdir: Path, agents_dir: Path, name: str) -> None:
        self.workdir = workdir
        self.name = name
        self.volume = name == "cinder-volume"
        self.broker = FakeBroker()
        self.binary = workdir / "fake-cinder-rpc"
        self.binary.write_text(
            f"#!{sys.executable}\n" + (ROOT / "tests/fakes/fake_cinder_rpc.py").read_text()
        )
        self.binary.chmod(0o755)
        self.config = workdir / "cinder.conf"
        self.rsctmp = workdir / "rsctmp"
        self.rsctmp.mkdir(mode=0o755)
        self.keystone = FakeKeystone(workdir / "tokens")
        service = "cinder-scheduler" if name == "cinder-schedule" else name
        self.services = FakeServices(service)
        self.defaults = {"host": "cluster", "enabled_backends": "b1,b2"}
        self.configure()
        self.agent = Agent(
            agents_dir / name,
            self.rsctmp,
            f"p_{name}",
            {
                "binary": str(self.binary),
                "config": str(self.config),
                "user": "root",
                "check_timeout": "2",
                # The fake broker is not AMQP: the consumer count is the real stack's to show.
                **({"guard_service_host": "false"} if name in ("cinder-volume", "cinder-backup") else {}),
            },
            runner="fork",
        )

    def configure(self, default: object = None, rabbit: object = None, **fake: str) -> None:
        options = dict(self.defaults, **(default or {}))  # type: ignore[arg-type]
        options.setdefault(
            "transport_url", f"rabbit://openstack:{RABBIT_PASSWORD}@127.0.0.1:{self.broker.port}/"
        )
        if self.volume:
            fake.setdefault("fork", "yes")
        lines = ["[DEFAULT]", *(f"{k} = {v}" for k, v in options.items() if v is not None)]
        lines += ["[fake]", *(f"{k} = {v}" for k, v in fake.items())]
        lines += ["[oslo_messaging_rabbit]", *(f"{k} = {v}" for k, v in dict(rabbit or {}).items())]
        self.config.write_text("\n".join(lines) + "\n")
        self.config.chmod(0o644)

    def use_heartbeat(self, rows: str = "up", catalog: bool = False) -> None:
        """Credentials for the heartbeat check; os-services rows for every expected host."""
        hosts = ["cluster@b1", "cluster@b2"] if self.volume else ["cluster"]
        self.services.rows = {host: rows for host in hosts}
        self.agent.params.update(
            os_auth_url=self.keystone.url, os_username="monitor", os_password=MONITOR_PASSWORD,
            os_project_name="admin",
        )  # fmt: skip
        if catalog:
            self.keystone.volume_url = self.services.url
        else:
            self.agent.params["url"] = self.services.url

    def pid(self) -> int:
        return self.agent.pid()

    def members(self, leader: int) -> List[int]:
        return session_members(leader)

    def children(self) -> List[int]:
        leader = self.pid()
        return [p for p in self.members(leader) if p != leader]

    def connected(self) -> List[int]:
        """The daemon's processes that hold a connection to the fake broker."""
        peers = established_peers(self.members(self.pid()))
        return [pid for pid, seen in peers.items() if ("127.0.0.1", self.broker.port) in seen]

    def wait_connected(self, count: int) -> None:
        assert wait_until(lambda: len(self.connected()) >= count, 5), "the fake daemon did not connect"

    def close(self) -> None:
        self.broker.stop()
        self.keystone.close()
        self.services.close()


@pytest.fixture
def make(agents_dir: Path) -> Iterator[Callable[[str], FakeRpc]]:
    made: List[FakeRpc] = []

    def factory(name: str) -> FakeRpc:
        fake = FakeRpc(open_dir("cinder-ocf-unit-rpc-"), agents_dir, name)
        made.append(fake)
        return fake

    yield factory
    for fake in made:
        stop = stop_resource(fake.agent, timeout_s=15, grace_s=5)
        fake.close()
        assert not stop.left, stop.left
        subprocess.run(["rm", "-rf", str(fake.workdir)], check=True)
        assert stop.run.rc == 0, stop.run


@pytest.fixture
def volume(make: Callable[[str], FakeRpc]) -> FakeRpc:
    return make("cinder-volume")


def test_volume_start_monitor_stop(volume: FakeRpc) -> None:
    assert volume.agent("monitor", interval_s=0).rc == 7
    start = volume.agent("start")
    assert start.rc == 0, start
    leader = volume.pid()
    assert len(volume.children()) == 2
    volume.wait_connected(2)  # start answered only once both backends were connected
    run = volume.agent("monitor")
    assert run.rc == 0, run
    assert "WARNING" not in run.stderr
    assert volume.agent("start").rc == 0  # idempotent
    assert volume.pid() == leader
    stop = volume.agent("stop")
    assert stop.rc == 0, stop
    assert volume.members(leader) == []
    assert volume.agent("monitor").rc == 7


@pytest.mark.parametrize("name", ["cinder-volume", "cinder-scheduler"])
def test_connections_of_dual_stack_sockets_count(make: Callable[[str], FakeRpc], name: str) -> None:
    """A client may reach an IPv4 broker through an IPv6 socket (::ffff:a.b.c.d), which the
    kernel lists among IPv6 connections only: a monitor that reads the IPv4 table alone for
    IPv4 brokers must still find these, in start and in every monitor."""
    fake = make(name)
    fake.configure(mapped="yes")
    start = fake.agent("start")
    assert start.rc == 0, start
    fake.wait_connected(2 if fake.volume else 1)
    run = fake.agent("monitor")
    assert run.rc == 0, run
    assert "WARNING" not in run.stderr, run.stderr


def test_helper_programs_of_the_parent_are_not_backend_processes(volume: FakeRpc) -> None:
    # The helper ends during start: taken for a backend process, it would have "died".
    volume.configure(helper="1.5")
    start = volume.agent("start")
    assert start.rc == 0, start
    helpers = [pid for pid in volume.children() if "sleep" in Path(f"/proc/{pid}/cmdline").read_text()]
    assert helpers, "the fake runs its second helper after forking"
    # Taken for a backend process, the helper would be one without an AMQP connection.
    run = volume.agent("monitor")
    assert run.rc == 0, run
    assert "no AMQP connection" not in run.stderr, run


def test_a_helper_that_execs_late_is_not_a_backend_process_that_died(volume: FakeRpc) -> None:
    # Between its fork and its exec a helper runs the daemon's executable: seen then (a starved
    # node schedules it late), it looks like a backend process, and then like one that died.
    volume.configure(helper_late_exec="1")
    start = volume.agent("start")
    assert start.rc == 0, start
    assert "died during start" not in start.stderr


def test_a_backend_child_respawned_by_the_parent_is_healthy(volume: FakeRpc) -> None:
    volume.configure(respawn_delay="1")
    assert volume.agent("start").rc == 0
    leader = volume.pid()
    victim = volume.children()[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: process_state(victim) is None, 3)
    run = volume.agent("monitor")  # the replacement comes 1 s later: the monitor waits for it
    assert run.rc == 0, run
    assert "replaced by the parent" in run.stderr
    assert volume.pid() == leader and len(volume.children()) == 2


def test_a_backend_child_gone_for_good_fails(volume: FakeRpc) -> None:
    volume.configure(respawn="no")
    assert volume.agent("start").rc == 0
    victim = volume.children()[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: process_state(victim) is None, 3)
    # The monitor waits RESPAWN_WAIT_S for a replacement that never comes: on a clock it moves.
    run = volume.agent("monitor", clock=FakeClock())
    assert run.rc == 1, run
    assert "only 1 of 2 cinder-volume backend processes run" in run.reason
    assert "b1, b2" in run.reason


def test_a_child_without_amqp_connection_fails_when_the_broker_answers(volume: FakeRpc) -> None:
    # A lost connection gets start_grace to come back, but never less than oslo.messaging's
    # longest pause between reconnection attempts (1 + 0 here) and 5 s to reconnect.
    volume.configure(rabbit=FAST_RECONNECT)
    volume.agent.params["start_grace"] = "2"
    assert volume.agent("start").rc == 0
    clock = FakeClock()
    clock.advance(2.1)  # past the children's start grace
    silent = volume.children()[0]
    os.kill(silent, signal.SIGUSR1)
    assert wait_until(lambda: len(volume.connected()) == 1, 5), "the child dropped its connection"
    first = act(volume.agent, "monitor", clock)
    assert first.rc == 0, first
    assert f"backend process {silent} has no AMQP connection" in first.log
    assert "WARNING" in first.log and "failing after 6 s unless it reconnects" in first.log
    clock.advance(1.1)
    waiting = act(volume.agent, "monitor", clock)  # past start_grace, but within the reconnection pause
    assert waiting.rc == 0, waiting
    clock.advance(5.0)
    run = act(volume.agent, "monitor", clock)
    assert run.rc == 1, run
    assert f"backend process {silent} has had no AMQP connection" in run.reason
    assert f"127.0.0.1:{volume.broker.port} accepts connections" in run.reason


def test_an_unreachable_broker_is_a_warning_not_a_failure(volume: FakeRpc) -> None:
    volume.agent.params["start_grace"] = "2"
    assert volume.agent("start").rc == 0
    clock = FakeClock()
    clock.advance(2.1)
    volume.broker.stop()
    run = act(volume.agent, "monitor", clock)
    assert run.rc == 0, run
    assert "WARNING" in run.log and "no broker of transport_url" in run.log
    assert "an outage of a dependency" in run.log
    assert RABBIT_PASSWORD not in run.log
    clock.advance(60)  # still an outage long after the grace
    assert act(volume.agent, "monitor", clock).rc == 0
    volume.broker.start()  # back: the service reconnects by itself, no restart
    leader = volume.pid()
    volume.wait_connected(2)
    healthy = volume.agent("monitor")
    assert healthy.rc == 0, healthy
    assert "WARNING" not in healthy.stderr
    assert volume.pid() == leader


def test_dead_parent_with_live_children_fails_and_stop_ends_them(volume: FakeRpc) -> None:
    assert volume.agent("start").rc == 0
    leader = volume.pid()
    children = volume.children()
    os.kill(leader, signal.SIGKILL)
    assert wait_until(lambda: process_state(leader) is None, 5)
    run = volume.agent("monitor")
    assert run.rc == 1, run
    assert "is gone but 2 of its processes still run" in run.reason
    assert volume.agent("stop").rc == 0
    assert all(process_state(pid) is None for pid in children)
    assert volume.members(leader) == []


def test_start_fails_at_once_when_a_backend_child_dies(volume: FakeRpc) -> None:
    volume.configure(child_die="yes", respawn_delay="0.3")
    run = volume.agent("start", timeout_s=30)
    assert run.rc == 1, run
    assert run.seconds < 5
    assert "died during start" in run.reason
    assert "fake driver failed to initialise" in run.reason


def test_start_fails_at_once_when_the_daemon_dies(volume: FakeRpc) -> None:
    volume.configure(die="yes")
    run = volume.agent("start", timeout_s=30)
    assert run.rc == 1, run
    assert run.seconds < 5
    assert "exited with status 2" in run.reason and "cannot load the driver" in run.reason


def test_start_gives_up_after_the_grace_when_never_connected(volume: FakeRpc) -> None:
    volume.configure(connect="no")
    volume.agent.params["start_grace"] = "2"
    run = volume.agent("start", timeout_s=30)
    assert run.rc == 1, run
    assert run.seconds < 6
    assert "no AMQP connection although the broker" in run.reason
    assert "start_grace 2 s" in run.reason


def test_start_waits_for_an_unreachable_broker_until_its_timeout(volume: FakeRpc) -> None:
    volume.agent.params["start_grace"] = "1"
    volume.broker.stop()
    run = volume.agent("start", timeout_s=3, runner="exec")  # within its op timeout, start-up included
    assert run.rc == 1, run
    assert run.seconds < 3
    cut_by_the_alarm = CUT_SHORT[1] in run.reason  # a starved node: the alarm answered (CUT_SHORT)
    assert cut_by_the_alarm or (
        "did not become healthy" in run.reason and "no broker of transport_url" in run.reason
    )


def test_amqp_server_port_replaces_the_ports_of_transport_url(volume: FakeRpc) -> None:
    volume.agent.params["start_grace"] = "2"
    assert volume.agent("start").rc == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        unused = sock.getsockname()[1]
    volume.agent.params["amqp_server_port"] = str(unused)
    clock = FakeClock()
    clock.advance(2.1)
    run = act(volume.agent, "monitor", clock)
    assert run.rc == 0, run
    assert f"no broker of transport_url (127.0.0.1:{unused})" in run.log


@pytest.mark.parametrize("name", ["cinder-scheduler", "cinder-backup", "cinder-schedule"])
def test_single_process_services(make: Callable[[str], FakeRpc], name: str) -> None:
    fake = make(name)
    fake.configure(rabbit=FAST_RECONNECT)
    fake.agent.params["start_grace"] = "2"
    start = fake.agent("start")
    assert start.rc == 0, start
    if name == "cinder-schedule":
        assert "cinder-schedule is deprecated" in start.stderr
    fake.wait_connected(1)
    assert fake.agent("monitor").rc == 0
    clock = FakeClock()
    clock.advance(2.1)
    os.kill(fake.pid(), signal.SIGUSR1)
    assert wait_until(lambda: not fake.connected(), 5), "the daemon dropped its connection"
    assert act(fake.agent, "monitor", clock).rc == 0
    clock.advance(6.1)
    run = act(fake.agent, "monitor", clock)
    assert run.rc == 1, run
    assert f"{name} (process {fake.pid()}) has had no AMQP connection" in run.reason


# ---------------------------------------------------------------- heartbeat (os-services)


def test_heartbeat_up_in_os_services(volume: FakeRpc) -> None:
    volume.use_heartbeat("up")
    start = volume.agent("start")
    assert start.rc == 0, start
    run = volume.agent("monitor")
    assert run.rc == 0, run
    assert volume.services.requests >= 2 and volume.keystone.token_requests == 1
    for output in (start, run):
        assert MONITOR_PASSWORD not in output.stderr and "fake-token-" not in output.stderr


def test_heartbeat_endpoint_from_the_keystone_catalog(make: Callable[[str], FakeRpc]) -> None:
    fake = make("cinder-backup")
    fake.use_heartbeat("up", catalog=True)
    assert fake.agent("start").rc == 0
    assert fake.agent("monitor").rc == 0
    assert fake.services.requests >= 2


def test_a_backend_down_in_os_services_fails(volume: FakeRpc) -> None:
    volume.use_heartbeat("up")
    assert volume.agent("start").rc == 0
    volume.services.go_down("cluster@b2")
    run = volume.agent("monitor")
    assert run.rc == 1, run
    assert "cinder-volume is down in os-services: cluster@b2 (last heartbeat 0 s ago)" in run.reason


@pytest.mark.parametrize("quiet_first", [False, True], ids=["quiet-row-last", "quiet-row-first"])
def test_a_host_is_judged_by_its_row_updated_last(make: Callable[[str], FakeRpc], quiet_first: bool) -> None:
    """Two schedulers of one shared host that first start at once leave two rows (cinder makes
    one each and keeps both): when the other node's stops, its row goes down while ours
    reports, and the monitor must not call ours down (seen once in a cluster's standby)."""
    fake = make("cinder-scheduler")
    fake.use_heartbeat("up")
    fake.services.extra_rows = [("cluster", "down", 15.0)]
    fake.services.extra_first = quiet_first
    start = fake.agent("start")
    assert start.rc == 0, start
    run = fake.agent("monitor")
    assert run.rc == 0, run
    assert "WARNING" not in run.stderr, run.stderr
    fake.services.go_down("cluster")  # ours stops reporting too: the host is down
    run = fake.agent("monitor")
    assert run.rc == 1, run
    assert "cinder-scheduler is down in os-services: cluster (last heartbeat 0 s ago)" in run.reason


def test_a_row_from_before_the_start_is_not_a_heartbeat(volume: FakeRpc) -> None:
    volume.use_heartbeat("stale")  # up, but from a previous run (another node's, say)
    volume.agent.params["start_grace"] = "2"
    run = volume.agent("start", timeout_s=30)
    assert run.rc == 1, run
    assert run.seconds < 6
    assert "has not reported to os-services since cinder-volume started" in run.reason


@pytest.mark.parametrize(("status", "fragment"), [(500, "HTTP 500"), (403, "admin role"), (404, "HTTP 404")])
def test_cinder_api_trouble_is_a_warning(volume: FakeRpc, status: int, fragment: str) -> None:
    volume.use_heartbeat("up")
    assert volume.agent("start").rc == 0
    volume.services.status = status
    run = volume.agent("monitor")
    assert run.rc == 0, run
    assert "WARNING" in run.stderr and fragment in run.stderr


def test_keystone_down_is_a_warning(volume: FakeRpc) -> None:
    volume.use_heartbeat("up")
    volume.keystone.close()
    start = volume.agent("start")
    assert start.rc == 0, start
    assert "WARNING" in start.stderr and "Keystone" in start.stderr


# ---------------------------------------------------------------- validate-all


@pytest.mark.parametrize(
    ("default", "params", "code", "fragment"),
    [
        ({"enabled_backends": None}, {}, 6, "no enabled_backends"),
        ({"transport_url": "rabbit://u:p@h:99999/"}, {}, 6, "bad port"),
        ({}, {"amqp_server_port": "0"}, 6, "amqp_server_port"),
        ({}, {"amqp_server_port": "65536"}, 6, "amqp_server_port"),
        ({}, {"amqp_server_port": "amqp"}, 6, "amqp_server_port"),
        ({}, {"start_grace": "0"}, 6, "start_grace"),
        ({}, {"url": "ftp://x/"}, 6, "url"),
        ({}, {"os_username": "monitor"}, 6, "incomplete monitoring credentials"),
        ({}, {"binary": "/nonexistent/cinder-volume"}, 5, "not found"),
        ({}, {"config": "/nonexistent/cinder.conf"}, 5, "does not exist"),
    ],
)
def test_validate_all_names_the_problem(
    volume: FakeRpc, default: dict, params: dict, code: int, fragment: str
) -> None:
    volume.configure(default)
    volume.agent.params.update(params)
    run = volume.agent("validate-all")
    assert run.rc == code, run
    assert fragment in run.reason
    assert volume.agent("stop").rc == 0
    assert volume.agent("monitor", interval_s=0).rc == 7


def test_validate_all_accepts_the_2013_parameters(volume: FakeRpc) -> None:
    volume.agent.params.update(multibackend="true", amqp_server_port="15672")
    run = volume.agent("validate-all")
    assert run.rc == 0, run
    assert "multibackend is deprecated and ignored" in run.stderr


def test_validate_all_warns_without_a_shared_host(volume: FakeRpc) -> None:
    volume.configure({"host": None})
    run = volume.agent("validate-all")
    assert run.rc == 0, run
    assert "WARNING" in run.stderr and "sets neither host" in run.stderr and "b1, b2" in run.stderr
    volume.config.write_text(
        volume.config.read_text() + "[b1]\nbackend_host = shared\n[b2]\nbackend_host = shared\n"
    )
    run = volume.agent("validate-all")
    assert run.rc == 0 and "sets neither host" not in run.stderr, run


@pytest.mark.parametrize(
    ("coordination", "said"),
    [
        (None, "unset: file://$state_path"),
        ("file:///var/lib/cinder", "(file://)"),
        ("etcd3+http://e:2379", None),
    ],
)
def test_validate_all_notes_node_local_locks(volume: FakeRpc, coordination: object, said: object) -> None:
    volume.configure()
    if coordination is not None:
        volume.config.write_text(
            volume.config.read_text() + f"[coordination]\nbackend_url = {coordination}\n"
        )
    run = volume.agent("validate-all")
    assert run.rc == 0, run
    if said is None:
        assert "node-local" not in run.stderr, run
    else:
        assert f"[coordination] backend_url is node-local {said}" in run.stderr.replace("(unset", "unset"), (
            run
        )


def test_secrets_of_transport_url_never_show(volume: FakeRpc) -> None:
    volume.configure(
        {"transport_url": f"rabbit://openstack:{RABBIT_PASSWORD}@127.0.0.1:{volume.broker.port}/?ssl=x"}
    )
    run = volume.agent("validate-all")
    assert run.rc == 6, run
    assert RABBIT_PASSWORD not in run.stderr


def test_check_command_shows_each_check(volume: FakeRpc) -> None:
    assert volume.agent("start").rc == 0
    from cinder_ocf.cli import check  # noqa: PLC0415

    out = io.StringIO()
    env = {"HA_RSCTMP": str(volume.rsctmp), "OCF_RESOURCE_INSTANCE": volume.agent.instance}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        code = check("cinder-volume", dict(volume.agent.params), stream=out)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert code == 0, out.getvalue()
    for name in ("processes", "amqp", "heartbeat"):
        assert name in out.getvalue()


@pytest.mark.nobody
def test_ocf_tester_passes_for_the_fake_volume(volume: FakeRpc) -> None:
    options = {name: volume.agent.params[name] for name in ("binary", "config", "user", "check_timeout")}
    run = ocf_tester(volume.agent.path, "p_cinder-volume", options, volume.rsctmp, timeout=300)
    assert "passed all tests" in run.stdout, run.stdout + run.stderr


def test_stop_does_not_wait_for_sigkill_when_processes_are_stopped(volume: FakeRpc) -> None:
    assert volume.agent("start").rc == 0
    leader = volume.pid()
    for pid in volume.members(leader):
        os.kill(pid, signal.SIGSTOP)
    run = volume.agent("stop", timeout_s=60)
    assert run.rc == 0, run
    assert run.seconds < 5, "SIGTERM must reach stopped processes (SIGCONT), not wait for SIGKILL"
    assert "SIGKILL" not in run.stderr
    assert volume.members(leader) == []
