"""Hostile input and faults, one row each: every agent must answer the right OCF code with a
reason that says why, never lie about the process, never signal one that is not its own.

Each row is an input or a fault, the action run, the exit code and a fragment of what the
agent says: its exit reason (ocf-exit-reason, shown by crm_mon) for a failure or "not
running", its log for a success (a warning names the dependency's outage).  A row that applies
to several agents is one case per agent.  Every case also checks what no answer may contain: a
traceback, an "internal error", more than one exit reason, an answer after the op timeout.

Three tables: INPUT_ROWS on a resource that is not running (parameters, cinder.conf, the pid
file, the environment), RUNNING_ROWS on a running resource shared by a module (what the
checks meet: Keystone, cinder-api, TLS, the broker, the token cache), LIFECYCLE_ROWS on a
fresh resource (daemons that die, ignore SIGTERM, leave zombies; metacharacters everywhere).
"""

import contextlib
import datetime
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import psutil
import pytest

from cinder_ocf.supervisor.processes import age_seconds, established_peers
from lab.host import process_state, session_members, wait_until
from lab.resource import AgentRun
from tests.conftest import free_port
from tests.unit.inprocess import FakeClock
from tests.unit.resources import (
    AGENT_NAMES,
    CUT_SHORT,
    RPC_NAMES,
    START_GRACE_S,
    FaultServer,
    Resource,
    api_answers,
    make_certificate,
    services_answers,
)

ALL = AGENT_NAMES
API = ["cinder-api"]
RPC = RPC_NAMES


class Ctx:
    """What a row's setup made, and what must be undone after it."""

    def __init__(self, res: Resource) -> None:
        self.res = res
        self.cleanups: List[Callable[[], None]] = []
        self.data: Dict[str, object] = {}
        self.env: Dict[str, str] = {}
        # What the agent measures time with for the row's action (not an executable's): a
        # setup moves it instead of sleeping until a grace has passed.
        self.clock: Optional[FakeClock] = None

    def bystander(self) -> subprocess.Popen:
        """A process that is not the agent's: it must survive whatever the agent does."""
        proc = subprocess.Popen(["sleep", "300"])
        self.cleanups.append(lambda: (proc.kill(), proc.wait()))
        self.data["bystander"] = proc
        return proc

    def server(self, *args: object, **kwargs: object) -> FaultServer:
        srv = FaultServer(*args, **kwargs)  # type: ignore[arg-type]
        self.cleanups.append(srv.close)
        return srv

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            cleanup()


Setup = Callable[[Ctx], None]
Check = Callable[[Ctx, AgentRun], None]


class Row:
    def __init__(
        self,
        name: str,
        agents: Sequence[str],
        action: str,
        code: int,
        fragment: Union[str, Tuple[str, ...]],
        setup: Optional[Setup] = None,
        check: Optional[Check] = None,
        timeout_s: float = 10.0,
        interval_s: float = 10.0,
        runner: Optional[str] = None,
    ) -> None:
        self.name = name
        self.agents = agents
        self.action = action
        self.code = code
        # "{name}" stands for the agent's name; a tuple: any of these (CUT_SHORT)
        self.fragments = (fragment,) if isinstance(fragment, str) else fragment
        self.setup = setup
        self.check = check
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        # The resource's runner (a fork, lab/forked.py; the input rows in this process) unless
        # "exec": the executable itself, where the row is an answer within the op timeout,
        # interpreter start-up included, or its command line.
        self.runner = runner

    def run(self, ctx: Ctx) -> AgentRun:
        if self.setup is not None:
            self.setup(ctx)
        run = ctx.res.run(self.action, timeout_s=self.timeout_s, interval_s=self.interval_s,
                          extra_env=ctx.env, runner=self.runner, clock=ctx.clock)  # fmt: skip
        fragments = tuple(f.replace("{name}", ctx.res.name) for f in self.fragments)
        assert_answer(run, self.code, fragments, self.timeout_s)
        if self.check is not None:
            self.check(ctx, run)
        return run


def assert_answer(run: AgentRun, code: int, fragments: Tuple[str, ...], timeout_s: float) -> None:
    assert run.rc == code, run
    said = run.reason if code not in (0, 2, 3) else run.stderr
    assert any(f in said for f in fragments), f"none of {fragments!r} in {said!r}\n{run!r}"
    if code not in (0, 2, 3):
        assert run.reason.strip(), run
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr, run
    assert run.stderr.count("ocf-exit-reason:") <= 1, run
    assert run.seconds < timeout_s, run


def cases(rows: Sequence[Row]) -> List[object]:
    return [pytest.param(row, agent, id=f"{row.name}-{agent}") for row in rows for agent in row.agents]


# ---------------------------------------------------------------- setups


def params(**values: str) -> Setup:
    def setup(ctx: Ctx) -> None:
        ctx.res.agent.params.update(values)

    return setup


def without(*names: str) -> Setup:
    def setup(ctx: Ctx) -> None:
        for name in names:
            ctx.res.agent.params.pop(name, None)

    return setup


def both(*setups: Setup) -> Setup:
    def setup(ctx: Ctx) -> None:
        for each in setups:
            each(ctx)

    return setup


def config_text(text: object) -> Setup:
    def setup(ctx: Ctx) -> None:
        data = text.encode() if isinstance(text, str) else text
        ctx.res.config.write_bytes(data)  # type: ignore[arg-type]

    return setup


def config_default(**options: Optional[str]) -> Setup:
    def setup(ctx: Ctx) -> None:
        ctx.res.configure(dict(options))

    return setup


def config_unreadable_for_nobody(ctx: Ctx) -> None:
    ctx.res.config.chmod(0o600)
    ctx.res.agent.params["user"] = "nobody"


def binary_not_executable(ctx: Ctx) -> None:
    ctx.res.binary.chmod(0o644)


def pid_text(text: str) -> Setup:
    def setup(ctx: Ctx) -> None:
        ctx.res.pid_file().write_text(text)

    return setup


def start_ticks(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def pid_of_bystander(ticks_delta: int = 0, exe: str = "/usr/bin/sleep", boot: str = "") -> Setup:
    """The pid file names a live process that is not the daemon (a pid reused after a crash)."""

    def setup(ctx: Ctx) -> None:
        proc = ctx.bystander()
        ticks = start_ticks(proc.pid) + ticks_delta
        ctx.res.pid_file().write_text(f"{proc.pid} {ticks} {boot or boot_id()} {exe}\n")

    return setup


def pid_symlink(dangling: bool) -> Setup:
    def setup(ctx: Ctx) -> None:
        target = ctx.res.workdir / "elsewhere"
        if not dangling:
            target.write_text("precious\n")
        ctx.res.pid_file().symlink_to(target)
        ctx.data["target"] = target

    return setup


def pid_owned_by_nobody(ctx: Ctx) -> None:
    proc = ctx.bystander()
    ctx.res.pid_file().write_text(f"{proc.pid} {start_ticks(proc.pid)} {boot_id()} /usr/bin/sleep\n")
    os.chown(ctx.res.pid_file(), 65534, 65534)


def pid_mode(mode: int) -> Setup:
    def setup(ctx: Ctx) -> None:
        proc = ctx.bystander()
        ctx.res.pid_file().write_text(f"{proc.pid} {start_ticks(proc.pid)} {boot_id()} /usr/bin/sleep\n")
        ctx.res.pid_file().chmod(mode)

    return setup


def pid_directory(ctx: Ctx) -> None:
    ctx.res.pid_file().mkdir()
    ctx.cleanups.append(lambda: shutil.rmtree(ctx.res.pid_file(), ignore_errors=True))


def pid_fifo(ctx: Ctx) -> None:
    os.mkfifo(ctx.res.pid_file(), 0o644)


def pid_of_zombie(ctx: Ctx) -> None:
    proc = subprocess.Popen(["true"])
    assert wait_until(lambda: process_state(proc.pid) is None, 5)  # exited, not reaped: a zombie
    ctx.cleanups.append(proc.wait)
    ctx.data["zombie"] = proc
    ctx.res.pid_file().write_text(f"{proc.pid} {start_ticks(proc.pid)} {boot_id()} /usr/bin/true\n")


def pid_directory_open_to_all(ctx: Ctx) -> None:
    directory = ctx.res.workdir / "open"
    directory.mkdir()
    directory.chmod(0o777)
    ctx.res.agent.params["pid"] = str(directory / "x.pid")


def rsctmp_is_a_file(ctx: Ctx) -> None:
    shutil.rmtree(ctx.res.rsctmp)
    ctx.res.rsctmp.write_text("not a directory\n")
    ctx.cleanups.append(lambda: (ctx.res.rsctmp.unlink(), ctx.res.rsctmp.mkdir()))


# ---------------------------------------------------------------- checks


def bystander_survives_stop(ctx: Ctx, run: AgentRun) -> None:
    stop = ctx.res.run("stop")
    assert stop.rc == 0, stop
    proc = ctx.data["bystander"]
    assert proc.poll() is None, "stop must not touch a process that is not the agent's"  # type: ignore[attr-defined]


def symlink_target_untouched(ctx: Ctx, run: AgentRun) -> None:
    assert ctx.res.run("stop").rc == 0
    target = ctx.data["target"]
    assert not ctx.res.pid_file().is_symlink()  # the link went, not what it points to
    if target.exists():  # type: ignore[attr-defined]
        assert target.read_text() == "precious\n"  # type: ignore[attr-defined]


def stop_succeeds(ctx: Ctx, run: AgentRun) -> None:
    stop = ctx.res.run("stop")
    assert stop.rc == 0, stop


def zombie_untouched(ctx: Ctx, run: AgentRun) -> None:
    assert ctx.res.run("stop").rc == 0
    proc = ctx.data["zombie"]
    assert proc.poll() == 0  # type: ignore[attr-defined]  # still ours to reap, with its own status


# ---------------------------------------------------------------- not running: inputs

INPUT_ROWS = [
    # the binary
    Row("binary-missing", ALL, "validate-all", 5, "/nonexistent/cinder not found or not executable",
        params(binary="/nonexistent/cinder")),
    Row("binary-not-executable", ALL, "start", 5, "not found or not executable", binary_not_executable),
    Row("binary-not-in-path", ["cinder-api", "cinder-volume"], "validate-all", 5, "in PATH (/usr/sbin",
        params(binary="cinder-ocf-no-such-program")),
    Row("binary-unicode-missing", ["cinder-api", "cinder-backup"], "validate-all", 5,
        "/opt/cïndér/bin/cinder not found", params(binary="/opt/cïndér/bin/cinder")),
    # cinder.conf
    Row("config-missing", ALL, "start", 5, "config file /nonexistent/cinder.conf does not exist",
        params(config="/nonexistent/cinder.conf")),
    Row("config-unreadable-by-user", ALL, "validate-all", 6, "user nobody cannot read",
        config_unreadable_for_nobody),
    Row("config-is-a-directory", ["cinder-api", "cinder-volume"], "validate-all", 6, "is not a regular file",
        lambda ctx: ctx.res.agent.params.update(config=str(ctx.res.workdir))),
    Row("config-no-section", ALL, "validate-all", 6, "Section must be started before assignment",
        config_text("transport_url = rabbit://h/\n")),
    Row("config-not-ini", ["cinder-api", "cinder-scheduler"], "validate-all", 6, "No ':' or '=' found",
        config_text("this is not an ini file\n")),
    Row("config-not-utf8", ["cinder-api", "cinder-backup"], "validate-all", 6, "codec can't decode",
        config_text(b"[DEFAULT]\nhost = \xff\xfe\n")),
    Row("config-bad-port", API, "validate-all", 6,
        "osapi_volume_listen_port is not valid: invalid literal for int()",
        config_default(osapi_volume_listen_port="many")),
    Row("config-bad-reconnect-interval", RPC, "validate-all", 6, "rabbit_interval_max is not valid",
        config_text("[DEFAULT]\nenabled_backends = b1\n[oslo_messaging_rabbit]\nrabbit_interval_max = x\n")),
    Row("config-bad-transport-url", RPC, "start", 6, "bad port '99999' in host 1 of transport_url",
        config_default(transport_url="rabbit://openstack:pw@127.0.0.1:99999/")),
    Row("config-empty-no-backends", ["cinder-volume"], "start", 6, "sets no enabled_backends",
        config_text("")),
    Row("config-empty-no-transport", ["cinder-scheduler", "cinder-backup"], "validate-all", 0,
        "sets no transport_url", config_text("")),
    Row("config-empty-no-credentials", API, "validate-all", 0, "no usable Keystone credentials",
        both(config_text(""), without("os_username", "os_password", "os_project_name", "os_auth_url"))),
    # the user
    Row("user-unknown", ALL, "start", 5, "user no-such-user-cinder-ocf does not exist",
        params(user="no-such-user-cinder-ocf")),
    Row("user-shell-metacharacters", ["cinder-api", "cinder-volume"], "validate-all", 5,
        "user cinder;touch pwned does not exist", params(user="cinder;touch pwned")),
    # URLs
    Row("url-not-http", ALL, "validate-all", 6, "not an http(s) URL", params(url="ftp://127.0.0.1/")),
    Row("url-unclosed-bracket", ["cinder-api", "cinder-scheduler"], "validate-all", 6, "unclosed [",
        params(url="http://[::1")),
    Row("url-bad-port", ["cinder-api", "cinder-volume"], "validate-all", 6, "bad port '99999'",
        params(url="http://127.0.0.1:99999/")),
    Row("url-with-credentials", ["cinder-api", "cinder-backup"], "validate-all", 6,
        "credentials in the URL", params(url="http://u:p@127.0.0.1:8776/")),
    Row("url-header-injection", ["cinder-api", "cinder-volume"], "validate-all", 6, "control characters",
        params(url="http://127.0.0.1:8776/\r\nX-Injected: 1")),
    Row("keystone-url-not-http", ["cinder-api", "cinder-scheduler"], "validate-all", 6,
        "os_auth_url: not an http(s) URL", params(os_auth_url="keystone.example:5000")),
    Row("credentials-incomplete", ["cinder-api", "cinder-backup"], "start", 6,
        "incomplete monitoring credentials", params(os_password="")),
    Row("ca-file-missing", ["cinder-api", "cinder-volume"], "validate-all", 6,
        "ca_file /nonexistent/ca.pem does not exist", params(ca_file="/nonexistent/ca.pem")),
    Row("insecure-not-boolean", ["cinder-api", "cinder-schedule"], "validate-all", 6,
        "parameter insecure='maybe': not a boolean", params(insecure="maybe")),
    # timeouts
    Row("check-timeout-not-a-number", ALL, "validate-all", 6,
        "parameter check_timeout='soon': not a whole number", params(check_timeout="soon")),
    Row("check-timeout-zero", ["cinder-api", "cinder-volume"], "start", 6, "must be at least 1",
        params(check_timeout="0")),
    Row("check-timeout-negative", ["cinder-scheduler"], "validate-all", 6, "must be at least 1",
        params(check_timeout="-5")),
    Row("check-timeout-huge", ["cinder-api", "cinder-backup"], "validate-all", 6, "must be at most 3600",
        params(check_timeout="99999999999999999999999")),
    Row("check-timeout-float", ["cinder-volume"], "validate-all", 6, "not a whole number",
        params(check_timeout="1e3")),
    Row("start-grace-zero", ["cinder-volume", "cinder-scheduler"], "validate-all", 6,
        "parameter start_grace='0': must be at least 1", params(start_grace="0")),
    Row("amqp-port-absurd", ["cinder-volume", "cinder-backup"], "validate-all", 6,
        "amqp_server_port='70000': must be at most 65535", params(amqp_server_port="70000")),
    Row("stop-with-bad-parameters", ALL, "stop", 0, "using the default",
        params(check_timeout="soon", binary="/nonexistent/x", config="/nonexistent/y")),
    Row("op-timeout-not-a-number", ["cinder-api", "cinder-volume"], "monitor", 7, "is not running",
        lambda ctx: ctx.env.update(OCF_RESKEY_CRM_meta_timeout="soon")),
    Row("check-level-garbage", ["cinder-scheduler"], "monitor", 7, "no pid file",
        lambda ctx: ctx.env.update(OCF_CHECK_LEVEL="deep;rm -rf /")),
    # Characters str.isdigit() takes and int() refuses (a superscript) or reads (other scripts'
    # digits): never an internal error, and only ASCII digits are a level or a port.
    Row("check-level-superscript", ["cinder-scheduler", "cinder-api"], "monitor", 7, "no pid file",
        lambda ctx: ctx.env.update(OCF_CHECK_LEVEL="\u00b2")),
    Row("config-transport-url-superscript-port", RPC, "validate-all", 6, "bad port '\u00b2' in host 1",
        config_default(transport_url="rabbit://openstack:pw@127.0.0.1:\u00b2/")),
    Row("config-transport-url-other-digits-port", ["cinder-volume"], "validate-all", 6,
        "bad port '\u0665\u0666\u0667\u0662' in host 1", config_default(transport_url="rabbit://openstack:pw@127.0.0.1:\u0665\u0666\u0667\u0662/")),
    # additional_parameters, console_log, pid, HA_RSCTMP
    Row("additional-parameters-unbalanced-quote", ALL, "start", 6, "additional_parameters: No closing",
        params(additional_parameters="--debug 'unbalanced")),
    Row("console-log-relative", ALL, "start", 6, "console_log 'console.log' is not an absolute path",
        params(console_log="console.log")),
    Row("pid-relative", ["cinder-api", "cinder-volume"], "validate-all", 6, "is not an absolute path",
        params(pid="relative.pid")),
    Row("pid-directory-writable-by-others", ALL, "start", 4, "is writable by others (no sticky bit)",
        pid_directory_open_to_all),
    Row("rsctmp-is-a-file", ["cinder-api", "cinder-scheduler"], "start", 4, "cannot create the directory",
        rsctmp_is_a_file),
    # probes where nothing is installed, and actions
    Row("probe-without-install", ALL, "monitor", 7, "is not running",
        params(binary="/nonexistent/cinder", config="/nonexistent/cinder.conf"), interval_s=0),
    Row("unknown-action", ["cinder-api", "cinder-volume"], "promote", 3, "usage:", runner="exec"),
    Row("unicode-instance", ["cinder-api", "cinder-backup"], "monitor", 7, "no pid file",
        lambda ctx: setattr(ctx.res.agent, "instance", "p_cïnder-ünï")),
    # the pid file: never trusted beyond what it proves
    Row("pid-file-empty", ALL, "monitor", 7, "holds no process identity", pid_text(""), stop_succeeds),
    Row("pid-file-garbage", ["cinder-api", "cinder-volume"], "monitor", 7, "holds no process identity",
        pid_text("garbage\n\x00\x01"), stop_succeeds),
    Row("pid-file-negative", ["cinder-api", "cinder-scheduler"], "monitor", 7, "impossible pid -5",
        pid_text("-5 1 x /bin/sh\n"), stop_succeeds),
    Row("pid-file-pid-1", ["cinder-volume"], "monitor", 7, "impossible pid 1",
        pid_text(f"1 1 {'x' * 8} /sbin/init\n"), stop_succeeds),
    Row("pid-file-huge", ["cinder-api", "cinder-backup"], "monitor", 7,
        "process 99999999999999999999 recorded in", pid_text("99999999999999999999 1 b e\n"), stop_succeeds),
    Row("pid-of-unrelated-process", ALL, "monitor", 7, "is gone", pid_of_bystander(-100),
        bystander_survives_stop),
    Row("pid-of-unrelated-program", ["cinder-api", "cinder-volume"], "monitor", 7, "is gone",
        pid_of_bystander(0, exe="/usr/bin/cinder-api"), bystander_survives_stop),
    Row("pid-from-another-boot", ["cinder-scheduler"], "monitor", 7, "is gone",
        pid_of_bystander(0, boot="00000000-0000-0000-0000-000000000000"), bystander_survives_stop),
    Row("pid-file-symlink", ALL, "monitor", 7, "is a symbolic link", pid_symlink(False),
        symlink_target_untouched),
    Row("pid-file-dangling-symlink", ["cinder-schedule"], "monitor", 7, "is a symbolic link",
        pid_symlink(True), symlink_target_untouched),
    Row("pid-file-owned-by-another-user", ALL, "monitor", 7, "is owned by uid 65534, not by us",
        pid_owned_by_nobody, bystander_survives_stop),
    Row("pid-file-writable-by-others", ["cinder-api", "cinder-volume"], "monitor", 7,
        "is writable by others", pid_mode(0o666), bystander_survives_stop),
    Row("pid-file-is-a-directory", ["cinder-api", "cinder-volume"], "monitor", 7, "is not a regular file",
        pid_directory, stop_succeeds),
    Row("pid-file-is-a-fifo", ["cinder-backup"], "monitor", 7, "is not a regular file", pid_fifo,
        stop_succeeds),
    Row("pid-of-a-zombie", ["cinder-api", "cinder-volume"], "monitor", 7, "is gone", pid_of_zombie,
        zombie_untouched),
]  # fmt: skip


@pytest.fixture
def fresh(agents_dir: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Resource]]:
    made: List[Resource] = []

    def make(name: str, runner: str = "fork") -> Resource:
        res = Resource(agents_dir, name, runner=runner)
        made.append(res)
        return res

    yield make
    for res in made:
        res.close()


@pytest.mark.parametrize(("row", "agent"), cases(INPUT_ROWS))
def test_input(fresh: Callable[..., Resource], row: Row, agent: str) -> None:
    # What the agent decides on its inputs, no daemon started: in this process (lab/inprocess.py).
    ctx = Ctx(fresh(agent, runner="inprocess"))
    try:
        row.run(ctx)
        stop = ctx.res.run("stop", extra_env=ctx.env)
        assert stop.rc == 0, stop  # stop works whatever the input
        assert ctx.res.pid() is None or process_state(ctx.res.pid() or 0) is None
    finally:
        ctx.close()


# ---------------------------------------------------------------- running: what the checks meet


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def running(agents_dir: Path) -> Iterator[Callable[[str], Resource]]:
    """One running resource per agent for the module: faults are set and undone per row.

    Its daemon is started and stopped by a forked agent (lab/forked.py), so that it is
    not this process's child; the rows' monitors, which start nothing, run in this process
    (lab/inprocess.py)."""
    made: Dict[str, Resource] = {}

    def get(name: str) -> Resource:
        res = made.get(name)
        if res is None:
            res = made[name] = Resource(agents_dir, name, runner="inprocess")
            res.start(runner="fork")
            if not res.api:
                assert wait_until(lambda: broker_connected(res), 5)
        res.reset()
        # After a broker outage the fake reconnects within 0.2 s: a clean monitor comes soon.
        if not wait_until(lambda: clean_monitor(res), 3, step_s=0.3):
            res.run("stop", runner="fork")
            res.start(runner="fork")
            if not res.api:
                assert wait_until(lambda: broker_connected(res), 5)
        return res

    yield get
    for res in made.values():
        res.agent.runner = "fork"
        res.close()


def clean_monitor(res: Resource) -> bool:
    healthy = res.run("monitor")
    return healthy.rc == 0 and "WARNING" not in healthy.stderr


def broker_connected(res: Resource) -> bool:
    assert res.broker is not None
    peers = established_peers(res.members()).values()
    return any(("127.0.0.1", res.broker.port) in seen for seen in peers)


def url_to(mode: str, status: int = 0, tls_mode: str = "") -> Setup:
    """url points at a server of the tests' own that misbehaves (mode, or an HTTP status)."""

    def setup(ctx: Ctx) -> None:
        res = ctx.res
        healthy = api_answers if res.api else services_answers(res.services)  # type: ignore[arg-type]
        answer = healthy if not status else (lambda path: (status, b'{"error": "fake"}', "application/json"))
        if mode == "auth-fails":
            answer = lambda path: (300, b"{}", "application/json") if path == "/" else (status, b"{}", "x/y")  # noqa: E731
        if mode == "keystone-503":  # keystonemiddleware's answer when Keystone fails it
            failed = (
                b'{"error": {"code": 503, "message": "The Keystone service is temporarily unavailable."}}'
            )
            answer = lambda path: (300, b"{}", "application/json") if path == "/" else (503, failed, "x/y")  # noqa: E731
        if mode == "not-json":
            answer = lambda path: (300 if path == "/" else 200, b"<html>maintenance</html>", "text/html")  # noqa: E731
        cert = ctx.data.get("tls") if tls_mode else None
        answering = ("auth-fails", "keystone-503", "not-json", "status")
        srv = ctx.server("answer" if mode in answering else mode, answer, tls=cert)
        res.agent.params["url"] = srv.url
        ctx.data["server"] = srv
        if tls_mode == "ca_file":
            res.agent.params["ca_file"] = str(cert[0])  # type: ignore[index]
        elif tls_mode == "insecure":
            res.agent.params["insecure"] = "true"

    return setup


quick = params(check_timeout="1")


def url_refused(ctx: Ctx) -> None:
    ctx.res.agent.params["url"] = f"http://127.0.0.1:{free_port()}"


def keystone(mode: str) -> Setup:
    def setup(ctx: Ctx) -> None:
        ctx.res.keystone.mode = mode
        ctx.res.token_cache().unlink(missing_ok=True)

    return setup


def token_cached(ctx: Ctx) -> None:
    """A monitor of the healthy daemon first: the row's monitor finds the token cached."""
    warm = ctx.res.run("monitor", extra_env=ctx.env, clock=ctx.clock)
    assert warm.rc == 0 and ctx.res.token_cache().exists(), warm


def token_forgotten(ctx: Ctx) -> None:
    ctx.res.token_cache().unlink(missing_ok=True)


def keystone_failing_token_cached(ctx: Ctx) -> None:
    """Keystone answers 500 to everything, while the resource's token is still cached."""
    ctx.res.keystone.mode = "error500"


def asked(*paths: str) -> Check:
    """The API was asked these paths, in this order ("{types}": the authenticated GET's)."""

    def check(ctx: Ctx, run: AgentRun) -> None:
        srv = ctx.data["server"]
        assert isinstance(srv, FaultServer)
        seen = ["{types}" if p.startswith("/v3/") and p.endswith("/types") else p for p in srv.paths]
        assert seen == list(paths), (seen, run)

    return check


def keystone_down(ctx: Ctx) -> None:
    ctx.res.agent.params["os_auth_url"] = f"http://127.0.0.1:{free_port()}/v3"


def service_row_down(ctx: Ctx) -> None:
    services = ctx.res.services
    assert services is not None
    host = next(iter(services.rows))
    services.go_down(host)
    ctx.cleanups.append(lambda: services.rows.update({host: "up"}))


def broker_down(ctx: Ctx) -> None:
    broker = ctx.res.broker
    assert broker is not None
    # Past start_grace, on the agent's own measure of age: a missing connection is no longer
    # "starting".  The youngest process counts (a backend child forks after the leader: a
    # restarted daemon's child on a loaded node was younger than the leader by 0.2 s and more).
    ages = []
    for pid in ctx.res.members():
        with contextlib.suppress(psutil.Error):
            ages.append(age_seconds(psutil.Process(pid)))
    if ages and min(ages) < START_GRACE_S + 0.5:
        ctx.clock = FakeClock()
        ctx.clock.advance(START_GRACE_S + 0.5 - min(ages))
    broker.stop()
    ctx.cleanups.append(broker.start)


def daemon_stopped(ctx: Ctx) -> None:
    """SIGSTOP: the process exists but answers nothing (hung)."""
    pid = ctx.res.pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    ctx.cleanups.append(lambda: os.kill(pid, signal.SIGCONT))


# The token cache: anything not a 0600 regular file of ours is ignored and replaced.


def token_cache(change: Callable[[Path], None]) -> Setup:
    def setup(ctx: Ctx) -> None:
        cache = ctx.res.token_cache()
        assert cache.is_file(), "the healthy monitor before the row cached a token"
        change(cache)
        ctx.data["requests"] = ctx.res.keystone.token_requests

    return setup


def stale(cache: Path) -> None:
    record = json.loads(cache.read_text())
    state = json.loads(record["auth_state"])
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=10)
    state["body"]["token"]["expires_at"] = soon.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    record["auth_state"] = json.dumps(state)
    cache.write_text(json.dumps(record))


def corrupt(cache: Path) -> None:
    cache.write_bytes(b"\x00\xff garbage without a key\n")


def owned_by_nobody(cache: Path) -> None:
    os.chown(cache, 65534, 65534)


def readable_by_all(cache: Path) -> None:
    cache.chmod(0o644)


def symlinked(cache: Path) -> None:
    target = cache.parent.parent / "token-elsewhere"
    target.write_text(cache.read_text())
    target.chmod(0o600)
    cache.unlink()
    cache.symlink_to(target)


def a_directory(cache: Path) -> None:
    cache.unlink()
    cache.mkdir()


def cache_replaced(ctx: Ctx, run: AgentRun) -> None:
    assert ctx.res.keystone.token_requests == ctx.data["requests"] + 1, "the bad cache must be ignored"  # type: ignore[operator]
    info = ctx.res.token_cache().lstat()
    assert info.st_uid == 0 and (info.st_mode & 0o777) == 0o600 and not ctx.res.token_cache().is_symlink()
    target = ctx.res.workdir / "token-elsewhere"
    if target.exists():
        assert "fake-token-" in target.read_text(), "the symlink's target is never written"


def cache_not_a_file(ctx: Ctx, run: AgentRun) -> None:
    assert ctx.res.keystone.token_requests == ctx.data["requests"] + 1  # type: ignore[operator]
    shutil.rmtree(ctx.res.token_cache())


def rsctmp_open_to_all(ctx: Ctx) -> None:
    ctx.res.token_cache().unlink()
    ctx.res.rsctmp.chmod(0o777)
    ctx.cleanups.append(lambda: ctx.res.rsctmp.chmod(0o755))


RUNNING_ROWS = [
    # cinder-api itself: its failures fail the monitor, before the op timeout
    # A hang lasts check_timeout: 1 s (its least) where the row waits one out.
    Row("api-hangs", API, "monitor", 1, "does not answer GET", both(url_to("hang"), quick), timeout_s=5),
    Row("api-hangs-past-op-timeout", API, "monitor", 1, "does not answer GET",
        both(url_to("hang"), params(check_timeout="60")), timeout_s=2, runner="exec"),
    Row("api-process-hung", API, "monitor", 1, "does not answer", both(daemon_stopped, quick), timeout_s=5),
    Row("api-500", API, "monitor", 1, "answered HTTP 500", url_to("status", 500)),
    Row("api-503", API, "monitor", 1, "answered HTTP 503", url_to("status", 503)),
    Row("api-redirects", API, "monitor", 1, "answered HTTP 302", url_to("status", 302)),
    Row("api-resets", API, "monitor", 1, "reset", url_to("reset")),
    Row("api-closes", API, "monitor", 1, "connection closed without an answer", url_to("close")),
    Row("api-not-http", API, "monitor", 1, "not an HTTP answer: 'SSH-2.0", url_to("garbage")),
    Row("api-refused", API, "monitor", 1, "refused", url_refused),
    Row("api-authenticated-500", API, "monitor", 1, "answered HTTP 500 for an authenticated GET",
        url_to("auth-fails", 500)),
    Row("api-rejects-token", API, "monitor", 1, "rejects a valid Keystone token: HTTP 401",
        url_to("auth-fails", 401)),
    Row("api-chunked", API, "monitor", 0, "is healthy", url_to("chunked")),
    # With the token cached one GET asks the API; without, GET / is asked before Keystone is.
    Row("api-one-round-trip-with-a-cached-token", API, "monitor", 0, "is healthy",
        both(token_cached, url_to("answer")), asked("{types}")),
    Row("api-root-first-without-a-token", API, "monitor", 0, "is healthy",
        both(url_to("answer"), token_forgotten), asked("/", "{types}")),
    # The authenticated GET fails while Keystone does: GET / decides, asked after it.
    Row("api-5xx-keystone-failing-root-answers", API, "monitor", 0, "a Keystone outage, not cinder-api's",
        both(token_cached, url_to("auth-fails", 500), keystone_failing_token_cached), asked("{types}", "/")),
    # Keystone answers, but fails cinder-api's keystonemiddleware (seen: 403 to the service user
    # just after a restart): cinder-api's 503 says so, and GET / decides.
    Row("api-503-from-keystonemiddleware", API, "monitor", 0,
        "keystonemiddleware cannot have tokens validated", url_to("keystone-503"), asked("{types}", "/")),
    Row("api-5xx-keystone-failing-root-fails", API, "monitor", 1, "/ answered HTTP 503",
        both(token_cached, url_to("status", 503), keystone_failing_token_cached), asked("{types}", "/")),
    Row("api-tls-untrusted", API, "monitor", 1, "certificate verify failed", url_to("answer", tls_mode="on")),
    Row("api-tls-ca-file", API, "monitor", 0, "is healthy", url_to("answer", tls_mode="ca_file")),
    Row("api-tls-insecure", API, "monitor", 0, "is healthy", url_to("answer", tls_mode="insecure")),
    # Keystone: its trouble is never the service's
    Row("keystone-down", ALL, "monitor", 0, "unreachable: Connection refused", keystone_down),
    Row("keystone-slow", ["cinder-api", "cinder-volume", "cinder-backup"], "monitor", 0,
        "unreachable: timed out", both(keystone("slow"), quick), timeout_s=5),
    Row("keystone-500", ALL, "monitor", 0, "Keystone answered 500", keystone("error500")),
    Row("keystone-rejects", ALL, "monitor", 0, "Keystone rejected the credentials", keystone("reject401")),
    # cinder-api as the RPC services' heartbeat source: its trouble is not theirs
    Row("heartbeat-api-hangs", ["cinder-volume", "cinder-scheduler"], "monitor", 0,
        "cinder-api does not answer (no answer from", both(url_to("hang"), quick), timeout_s=5),
    Row("heartbeat-api-500", RPC, "monitor", 0, "cinder-api answered HTTP 500", url_to("status", 500)),
    Row("heartbeat-api-503", ["cinder-backup"], "monitor", 0, "cinder-api answered HTTP 503",
        url_to("status", 503)),
    Row("heartbeat-api-not-json", RPC, "monitor", 0, "answer is not JSON", url_to("not-json")),
    Row("heartbeat-api-resets", ["cinder-volume", "cinder-backup"], "monitor", 0, "reset", url_to("reset")),
    Row("heartbeat-api-tls-untrusted", RPC, "monitor", 0, "certificate verify failed",
        url_to("answer", tls_mode="on")),
    Row("heartbeat-api-tls-ca-file", ["cinder-volume", "cinder-scheduler"], "monitor", 0, "is healthy",
        url_to("answer", tls_mode="ca_file")),
    Row("heartbeat-down", RPC, "monitor", 1, "is down in os-services", service_row_down),
    # the broker
    Row("rabbitmq-down", RPC, "monitor", 0, "no broker of transport_url", broker_down),
    # the token cache
    Row("token-cache-stale", ["cinder-api", "cinder-volume"], "monitor", 0, "is healthy",
        token_cache(stale), cache_replaced),
    Row("token-cache-corrupt", ["cinder-api", "cinder-scheduler"], "monitor", 0, "is healthy",
        token_cache(corrupt), cache_replaced),
    Row("token-cache-owned-by-another-user", ["cinder-api", "cinder-volume"], "monitor", 0, "is healthy",
        token_cache(owned_by_nobody), cache_replaced),
    Row("token-cache-mode-0644", ["cinder-api", "cinder-backup"], "monitor", 0, "is healthy",
        token_cache(readable_by_all), cache_replaced),
    Row("token-cache-symlink", ["cinder-api", "cinder-volume"], "monitor", 0, "is healthy",
        token_cache(symlinked), cache_replaced),
    Row("token-cache-a-directory", ["cinder-api"], "monitor", 0, "cannot cache the token",
        token_cache(a_directory), cache_not_a_file),
    Row("rsctmp-writable-by-others", ["cinder-api", "cinder-scheduler"], "monitor", 0,
        "is writable by others (no sticky bit)", rsctmp_open_to_all),
]  # fmt: skip


@pytest.mark.parametrize(("row", "agent"), cases(RUNNING_ROWS))
def test_running(running: Callable[[str], Resource], tls: Tuple[Path, Path], row: Row, agent: str) -> None:
    res = running(agent)
    leader = res.pid()
    ctx = Ctx(res)
    ctx.data["tls"] = tls
    ctx.env["HA_debug"] = "1"  # a healthy monitor says so in its log
    try:
        row.run(ctx)
    finally:
        ctx.close()
    assert res.pid() == leader and leader is not None and process_state(leader) is not None, (
        "a monitor never ends or replaces the daemon"
    )


# ---------------------------------------------------------------- lifecycle: the daemon misbehaves


def daemon(**fake: str) -> Setup:
    def setup(ctx: Ctx) -> None:
        ctx.res.configure(**fake)

    return setup


def dies(ctx: Ctx) -> None:
    ctx.res.configure(**({"mode": "die"} if ctx.res.api else {"die": "yes"}))


def started_then(action: str, **kwargs: object) -> Check:
    """After the row's start: action answers 0, and nothing of the daemon is left after stop."""

    def check(ctx: Ctx, run: AgentRun) -> None:
        leader = ctx.res.pid()
        assert leader is not None
        ctx.data["members"] = ctx.res.members()
        follow = ctx.res.run(action, **kwargs)
        ctx.data["follow"] = follow
        assert follow.rc == 0, follow
        if action == "stop":
            assert wait_until(lambda: process_state(leader) is None, 3)

    return check


def ignores_sigterm(ctx: Ctx, run: AgentRun) -> None:
    started_then("stop", timeout_s=2, runner="exec")(ctx, run)  # a stop within its op timeout
    follow = ctx.data["follow"]
    assert "SIGKILL" in follow.stderr and follow.seconds < 2, follow  # type: ignore[attr-defined]
    assert all(process_state(pid) is None for pid in ctx.data["members"])  # type: ignore[attr-defined]


def zombie_check(ctx: Ctx, run: AgentRun) -> None:
    pid = ctx.res.pid()
    assert pid is not None
    zombies = wait_until(lambda: any(zombie_children(pid)), 3)
    assert zombies, "the fake made a zombie child"
    monitor = ctx.res.run("monitor", extra_env={"HA_debug": "1"})
    assert monitor.rc == 0 and "is healthy" in monitor.stderr, monitor
    stop = ctx.res.run("stop", timeout_s=10)
    assert stop.rc == 0 and stop.seconds < 3 and "SIGKILL" not in stop.stderr, stop


def zombie_children(pid: int) -> List[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,stat="], capture_output=True, text=True).stdout
    rows = (line.split() for line in out.splitlines())
    found: List[int] = []
    for child, parent, stat in rows:
        if stat.startswith("Z") and (int(parent) == pid or int(parent) in session_of(pid)):
            found.append(int(child))
    return found


def session_of(leader: int) -> List[int]:
    return session_members(leader)


def killed_after_start(ctx: Ctx) -> None:
    ctx.res.start()
    pid = ctx.res.pid()
    assert pid is not None
    members = ctx.res.members()
    for member in members:
        os.kill(member, signal.SIGKILL)
    assert wait_until(lambda: all(process_state(p) is None for p in members), 5)


METACHARACTERS = '$(touch${IFS}pwned);`touch pwned`|touch pwned&&touch pwned>pwned ü"*'


def metacharacters_everywhere(ctx: Ctx) -> None:
    """Every string parameter, and HA_RSCTMP, holds shell metacharacters (and unicode).

    Each agent's thin executable as `cinder-ocf install-agents` writes it, the strings through
    execve: start, monitor and stop run it (runner "exec"), not a fork of the test."""
    res = ctx.res
    res.agent.runner = "exec"
    odd = res.workdir / f"dir {METACHARACTERS}"
    odd.mkdir(mode=0o755)
    binary = odd / res.binary.name
    shutil.copy2(res.binary, binary)
    # oslo.config expands $name in every option, the config file's own path included: cinder
    # itself could not read a file whose path holds a "$" (the agent says so, rc 6).
    plain = res.workdir / f"conf {METACHARACTERS.replace('$', '')}"
    plain.mkdir(mode=0o755)
    config = plain / "cinder.conf"
    shutil.copy2(res.config, config)
    ca_file = odd / "ca.pem"
    ca_file.write_text("")
    rsctmp = odd / "rsctmp"
    rsctmp.mkdir(mode=0o755)
    res.rsctmp = res.agent.rsctmp = rsctmp
    res.agent.instance = f"p_{res.name};$(touch pwned)"
    word = "x;$(touch${IFS}pwned)`touch${IFS}pwned`|ü"
    res.agent.params.update(
        binary=str(binary), config=str(config), console_log=str(odd / "console.log"),
        additional_parameters=f"--debug '{METACHARACTERS}' \"a;b\" x\\ y $(touch pwned) `touch pwned`",
        os_username=f"monitor{word}", os_password=f"pw{word}", os_project_name=f"admin{word}",
        os_user_domain_name=f"Default{word}", os_project_domain_name=f"Default{word}",
        ca_file=str(ca_file), pid=str(rsctmp / f"pid {METACHARACTERS}.pid"),
    )  # fmt: skip
    url = res.agent.params.get("url") or f"http://127.0.0.1:{res.port}"
    res.agent.params["url"] = url + "/$(touch${IFS}pwned);`touch${IFS}pwned`"
    if not res.api:
        res.agent.params["os_region_name"] = f"Region{word}"
    ctx.data["cwd"] = os.getcwd()


def nothing_ran_through_a_shell(ctx: Ctx, run: AgentRun) -> None:
    res = ctx.res
    pid = res.pid()
    assert pid is not None
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    # The arguments arrive as written, quotes removed as a shell would, nothing expanded.
    expected = [METACHARACTERS, "a;b", "x y", "$(touch", "pwned)", "`touch", "pwned`"]
    assert [a.decode() for a in argv[-len(expected) - 1 : -1]] == expected, argv
    monitor = res.run("monitor", extra_env={"HA_debug": "1"})
    assert monitor.rc == 0, monitor
    assert res.run("stop").rc == 0
    assert process_state(pid) is None
    found = [str(p) for root in (res.workdir, Path("/"), Path(str(ctx.data["cwd"])))
             for p in root.glob("*pwned*") if p.name == "pwned" or p.name.startswith("pwned")]  # fmt: skip
    assert not found, f"something ran a shell: {found}"


def rsctmp_missing(ctx: Ctx) -> None:
    shutil.rmtree(ctx.res.rsctmp)


def rsctmp_created(ctx: Ctx, run: AgentRun) -> None:
    assert ctx.res.rsctmp.is_dir() and ctx.res.pid_file().is_file()


LIFECYCLE_ROWS = [
    Row("daemon-dies-in-start", ALL, "start", 1, "during start; last output", dies, timeout_s=10),
    Row("daemon-ignores-sigterm", ALL, "start", 0, "{name} started (pid",
        daemon(ignore_term="yes", workers="1"), ignores_sigterm),
    Row("daemon-leaves-a-zombie", ALL, "start", 0, "{name} started (pid", daemon(zombie="yes"),
        zombie_check),
    Row("daemon-killed-after-start", ALL, "monitor", 7, "{name} is not running: process", killed_after_start,
        stop_succeeds),
    Row("start-with-rabbitmq-down", ["cinder-volume", "cinder-scheduler"], "start", 1,
        CUT_SHORT, broker_down, timeout_s=2, runner="exec"),
    Row("start-with-no-time", ["cinder-api", "cinder-backup"], "start", 1, CUT_SHORT,
        lambda ctx: ctx.env.update(OCF_RESKEY_CRM_meta_timeout="1"), timeout_s=2, runner="exec"),
    Row("start-without-rsctmp", ["cinder-api", "cinder-volume"], "start", 0, "started (pid", rsctmp_missing,
        rsctmp_created),
    Row("metacharacters-everywhere", ALL, "start", 0, "started (pid", metacharacters_everywhere,
        nothing_ran_through_a_shell),
]  # fmt: skip


@pytest.mark.parametrize(("row", "agent"), cases(LIFECYCLE_ROWS))
def test_lifecycle(fresh: Callable[..., Resource], row: Row, agent: str) -> None:
    ctx = Ctx(fresh(agent))
    try:
        row.run(ctx)
    finally:
        ctx.close()


# ---------------------------------------------------------------- boundaries (issue 14)
# Every wait ends by the check's deadline; whatever a service answers is its trouble; only the
# agent writes exit reasons and log lines; each failure is blamed on its cause; no input makes
# a traceback.

FORGED = "line one\\nocf-exit-reason:forged by the daemon\\x1b[31m red \\x07bell\\x00"


def fifo_in_config_dir(ctx: Ctx) -> None:
    directory = ctx.res.workdir / "conf.d"
    directory.mkdir()
    os.mkfifo(directory / "zz-fifo.conf", 0o644)
    ctx.res.agent.params["additional_parameters"] = f"--config-dir {directory}"


def ca_file_a_fifo(ctx: Ctx) -> None:
    fifo = ctx.res.workdir / "ca.fifo"
    os.mkfifo(fifo, 0o644)
    ctx.res.agent.params["ca_file"] = str(fifo)


def clouds_yaml_a_fifo(ctx: Ctx) -> None:
    fifo = ctx.res.workdir / "clouds.fifo"
    if not fifo.exists():
        os.mkfifo(fifo, 0o644)
    for name in ("os_username", "os_password", "os_project_name", "os_auth_url"):
        ctx.res.agent.params.pop(name, None)
    ctx.res.agent.params["os_cloud"] = "monitoring"
    ctx.env["OS_CLIENT_CONFIG_FILE"] = str(fifo)
    ctx.res.token_cache().unlink(missing_ok=True)


def services_answer(body: bytes) -> Setup:
    """url points at an os-services that answers 200 with body."""

    def setup(ctx: Ctx) -> None:
        srv = ctx.server("answer", lambda path: (200, body, "application/json"))
        ctx.res.agent.params["url"] = srv.url

    return setup


def dies_saying(text: str) -> Setup:
    def setup(ctx: Ctx) -> None:
        if ctx.res.api:
            ctx.res.configure(mode="die", die_output=text)
        else:
            ctx.res.configure(die="yes", die_output=text)

    return setup


def agent_speaks_alone(ctx: Ctx, run: AgentRun) -> None:
    """Every line on stderr is the agent's: its own log line or its one exit reason, printable."""
    tag = f"{ctx.res.name}(p_{ctx.res.name})["
    for line in run.stderr.splitlines():
        assert line.startswith((tag, "ocf-exit-reason:")), line
        assert line.isprintable(), repr(line)
    assert "ocf-exit-reason:forged" not in run.stderr, run


def log_file(ctx: Ctx) -> None:
    ctx.env["HA_LOGFILE"] = str(ctx.res.workdir / "ha.log")


def log_file_speaks_alone(ctx: Ctx, run: AgentRun) -> None:
    agent_speaks_alone(ctx, run)
    lines = (ctx.res.workdir / "ha.log").read_text().splitlines()
    assert lines, "the agent logged nothing"
    for line in lines:
        assert f" {ctx.res.name}(p_{ctx.res.name})[" in line[:60] and line.isprintable(), repr(line)
    assert not any(line.startswith("ocf-exit-reason") or "\x1b" in line for line in lines), lines


def forged_parameter(ctx: Ctx) -> None:
    ctx.res.agent.params["binary"] = "/nonexistent/cinder\nocf-exit-reason:forged\x1b[2J\rFAKE: all is well"
    log_file(ctx)


def console_log_a_directory(ctx: Ctx) -> None:
    directory = ctx.res.workdir / "console-dir"
    directory.mkdir()
    ctx.res.agent.params["console_log"] = str(directory)


def console_log_dangling(ctx: Ctx) -> None:
    link = ctx.res.workdir / "console-link"
    link.symlink_to(ctx.res.workdir / "nowhere" / "console.log")
    ctx.res.agent.params["console_log"] = str(link)


def op_timeout(value: str) -> Setup:
    def setup(ctx: Ctx) -> None:
        ctx.env["OCF_RESKEY_CRM_meta_timeout"] = value

    return setup


BOUNDARY_INPUT_ROWS = [
    Row("config-dir-holds-a-fifo", ALL, "validate-all", 6, "is not a regular file", fifo_in_config_dir,
        timeout_s=5),
    Row("ca-file-a-fifo", ALL, "validate-all", 6, "ca_file", ca_file_a_fifo, timeout_s=5),
    Row("parameter-forges-a-reason-and-log-lines", ALL, "validate-all", 5, "not found or not executable",
        forged_parameter, log_file_speaks_alone),
]  # fmt: skip

BOUNDARY_RUNNING_ROWS = [
    Row("keystone-drips", ALL, "monitor", 0, "unreachable: timed out", keystone("drip"), timeout_s=6),
    Row("api-drips", API, "monitor", 1, "does not answer GET", url_to("drip"), timeout_s=6),
    Row("heartbeat-api-drips", RPC, "monitor", 0, "cinder-api does not answer (no answer from",
        url_to("drip"), timeout_s=6),
    Row("clouds-yaml-a-fifo", ["cinder-api", "cinder-volume"], "monitor", 0, "is not a regular file",
        clouds_yaml_a_fifo, timeout_s=5),
    Row("keystone-201-unparsable-expiry", ALL, "monitor", 0, "Keystone answered a token the agent cannot use",
        keystone("bad-expires")),
    Row("keystone-201-without-project", ALL, "monitor", 0, "without a project scope", keystone("no-project")),
    Row("keystone-201-wrong-types", ALL, "monitor", 0, "Keystone", keystone("wrong-types")),
    Row("keystone-201-not-json", ALL, "monitor", 0, "Keystone", keystone("not-json")),
    Row("heartbeat-services-not-a-list", RPC, "monitor", 0, "unexpected os-services answer",
        services_answer(b'{"services": {"host": "cluster"}}')),
    Row("heartbeat-rows-of-wrong-types", RPC, "monitor", 0, "rows are not service rows",
        services_answer(b'{"services": [["cluster"], {"host": ["cluster"]}, {"host": "cluster@b1", '
                        b'"binary": 7, "updated_at": 12}, 5, null]}')),
    Row("op-timeout-zero", ["cinder-api", "cinder-volume"], "monitor", 0, "is healthy", op_timeout("0")),
    Row("op-timeout-negative", ["cinder-api", "cinder-scheduler"], "monitor", 0, "is healthy",
        op_timeout("-5000")),
    Row("op-timeout-not-a-number", ["cinder-api", "cinder-backup"], "monitor", 0, "is healthy",
        op_timeout("soon")),
    Row("op-timeout-beyond-the-alarm", ["cinder-api", "cinder-volume"], "monitor", 0, "is healthy",
        op_timeout("9" * 30)),
]  # fmt: skip

BOUNDARY_LIFECYCLE_ROWS = [
    Row("daemon-output-forges-a-reason", ALL, "start", 1, "during start", dies_saying(FORGED),
        agent_speaks_alone),
    Row("console-log-a-directory", ALL, "start", 4, "cannot open console_log", console_log_a_directory),
    Row("console-log-a-dangling-symlink", ALL, "start", 4, "cannot open console_log", console_log_dangling),
]  # fmt: skip


@pytest.mark.parametrize(("row", "agent"), cases(BOUNDARY_INPUT_ROWS))
def test_boundary_input(fresh: Callable[[str], Resource], row: Row, agent: str) -> None:
    test_input(fresh, row, agent)


@pytest.mark.parametrize(("row", "agent"), cases(BOUNDARY_RUNNING_ROWS))
def test_boundary_running(
    running: Callable[[str], Resource], tls: Tuple[Path, Path], row: Row, agent: str
) -> None:
    test_running(running, tls, row, agent)


@pytest.mark.parametrize(("row", "agent"), cases(BOUNDARY_LIFECYCLE_ROWS))
def test_boundary_lifecycle(fresh: Callable[[str], Resource], row: Row, agent: str) -> None:
    test_lifecycle(fresh, row, agent)


def test_the_boundary_rows_are_at_least_forty() -> None:
    rows = (BOUNDARY_INPUT_ROWS, BOUNDARY_RUNNING_ROWS, BOUNDARY_LIFECYCLE_ROWS)
    assert sum(len(row.agents) for group in rows for row in group) >= 40


def test_the_matrix_has_enough_rows() -> None:
    total = sum(len(row.agents) for rows in (INPUT_ROWS, RUNNING_ROWS, LIFECYCLE_ROWS) for row in rows)
    assert total >= 60, total
