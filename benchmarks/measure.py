"""make bench, the measuring: what the agents cost against the real services of the lab.

Starts RabbitMQ and Keystone (lab/stack), runs cinder-api, cinder-volume, cinder-scheduler
and cinder-backup through our agents as real processes, exactly as Pacemaker would run them,
and measures:

* monitor wall time, CPU time and peak RSS (median, p95) over --runs runs, for the cached-token
  path, the path that must fetch a token, and the unauthenticated path, each run alternately
  with the 2013 shell agent's pid-only cinder-api monitor (benchmarks/cinder-api-2013-monitor.sh);
* the second yardstick, the 2013 agent's full authenticated monitor in bash + curl against
  Keystone v3 (benchmarks/cinder-api-2013-authcheck.sh), run alternately with our cached-token
  cinder-api monitor, and the CPU time Keystone's (and cinder-api's) processes spend on each
  check, read from psutil before and after a batch;
* the cinder-volume monitor with 1, 4 and 16 fake-driver backends;
* what each library costs the cached-token monitor's start (python -X importtime), and a
  cProfile of the cinder-volume monitor (where its time goes);
* Keystone token requests, counted in Keystone's own access log;
* start overhead (the service healthy -> start returns) and stop overhead (the process tree
  gone -> stop returns);
* the cluster figures tests/cluster wrote to benchmarks/cluster-results.json, (active/active)
  cluster-aa-results.json and (both forms of the constraints) cluster-constraints-results.json,
  if any.

measure() returns the figures; benchmarks.report writes them.  Needs root (services run as
`cinder`).  Everything it starts is stopped by PID, on failure and on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import datetime
import json
import logging
import os
import platform
import pstats
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import psutil

from cinder_ocf.cli import install_agents
from cinder_ocf.openstack.keystone import RENEW_MARGIN_S, token_of
from lab.host import children, open_dir, pid_alive, session_members
from lab.resource import Agent, stack_resource
from lab.stack.install import STACK_PACKAGES, ensure_debian_packages, ensure_service_user, ensure_stack_venv
from lab.stack.openstack import AMQP_PORT, CINDER_HOST, FAKE_DRIVER, OpenStack, get_token, http_request

LOG = logging.getLogger("bench")
HERE = Path(__file__).resolve().parent
SHELL_AGENT = HERE / "cinder-api-2013-monitor.sh"
YARDSTICK = HERE / "cinder-api-2013-authcheck.sh"  # the 2013 agent's authenticated check, v3
GNU_TIME = "/usr/bin/time"
RUN_BASE = Path("/var/tmp/cinder-ocf")
SERVICE_USER = "cinder"
INTERVAL_S = 10.0  # the recurring monitor's interval the per-hour figures assume
MONITOR_TIMEOUT_S = 30.0
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
SERVICES = {
    "cinder-volume": [f"{CINDER_HOST}@fake1", f"{CINDER_HOST}@fake2"],
    "cinder-scheduler": [CINDER_HOST],
    "cinder-backup": [CINDER_HOST],
}
PATHS = {
    "cached": "cached token (the recurring monitor)",
    "fetch": "must fetch a token",
    "noauth": "no credentials",
}
TOKEN_REQUEST = '"POST /v3/auth/tokens '
TOKEN_VALIDATION = '"GET /v3/auth/tokens '  # cinder-api's keystonemiddleware checking a token
# keystonemiddleware's token_cache_time (the lab's cinder.conf leaves the default): how long
# cinder-api trusts a token it validated before it asks Keystone again.
MIDDLEWARE_TOKEN_CACHE_S = 300
BACKEND_COUNTS = (1, 4, 16)
GUARDED = ("cinder-volume", "cinder-backup")  # held to one server per service host (issue 11)
# The unit tests' stand-in for cinder-volume (run as a file, not imported): one idle child per
# backend, each holding a TCP connection to the broker, no database.
FAKE_DAEMON = HERE.parent / "tests" / "fakes" / "fake_cinder_rpc.py"
IMPORT_RUNS = 5
# What every monitor imports of the stdlib and the declared dependencies, whatever it checks:
# the checks' HTTP, the daemon's identity and tree, the cached facts and tokens, ocf_log, exit codes.
MONITOR_LIBRARIES = ("http.client", "psutil", "json", "logging", "enum")
# Modules whose import cost results.md reports (python -X importtime, cumulative).
IMPORTS = ("psutil", "logging", "http.client", "ssl", "json", "enum", "keystoneauth1", "oslo_config",
           "dataclasses", "inspect", "typing", "traceback", "socket", "datetime", "urllib.parse",
           "cinder_ocf")  # fmt: skip
PROFILED_FUNCTIONS = {
    "imports (importlib, after the interpreter's start)": ("<frozen importlib._bootstrap>", "_find_and_load"),
    "Supervisor.monitor (status and the checks)": ("cinder_ocf/supervisor/lifecycle.py", "monitor"),
    "cinder.conf facts (the cache, or oslo.config)": ("cinder_ocf/supervisor/lifecycle.py", "facts"),
    "the token cache": ("cinder_ocf/openstack/keystone.py", "load"),
    "HTTP GETs (http.client)": ("cinder_ocf/openstack/http.py", "get"),
    "psutil net_connections (the kernel's connection table)": ("psutil/__init__.py", "net_connections"),
    "processes.tree (a scan of every process)": ("cinder_ocf/supervisor/processes.py", "tree"),
    "processes.forks (the backend children)": ("cinder_ocf/supervisor/processes.py", "forks"),
    "the processes check": ("cinder_ocf/checks/rpc.py", "backend_processes"),
    "the AMQP check": ("cinder_ocf/checks/rpc.py", "_amqp"),
    "the heartbeat check (os-services)": ("cinder_ocf/checks/rpc.py", "heartbeat"),
    "the authenticated GET check": ("cinder_ocf/checks/api.py", "api_authenticated"),
}


class Interrupted(Exception):
    """SIGTERM: unwind through every finally, like Ctrl-C."""


def _on_sigterm(_signum: int, _frame: Any) -> None:
    raise Interrupted()


# ------------------------------------------------------------------ measuring one run


class Run:
    __slots__ = ("cpu", "rc", "stderr", "wall")

    def __init__(self, wall: float, cpu: float, rc: int, stderr: str) -> None:
        self.wall = wall
        self.cpu = cpu
        self.rc = rc
        self.stderr = stderr


def run_measured(argv: List[str], env: Dict[str, str], timeout: float) -> Run:
    """Wall time around the process, CPU time from its own rusage (wait4)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.stderr.close()
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:  # Ctrl-C, SIGTERM: the action must not outlive the bench
        proc.kill()
        proc.wait()
        raise
    finally:
        watchdog.cancel()
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait
    return Run(wall, usage.ru_utime + usage.ru_stime, proc.returncode, err.decode(errors="replace"))


def _environment(agent: Agent, action: str, timeout_s: float) -> Dict[str, str]:
    """What Pacemaker gives a recurring monitor every INTERVAL_S (and any other action)."""
    return agent.environment(action, timeout_s, INTERVAL_S)


def measured(agent: Agent, action: str, timeout_s: float = MONITOR_TIMEOUT_S) -> Run:
    """One action of agent, its wall and CPU time measured."""
    return run_measured(agent.argv(action), _environment(agent, action, timeout_s), timeout_s + 10)


def peak_rss_mib(argv: List[str], env: Dict[str, str], timeout: float, scratch: Path) -> float:
    """Peak RSS of one run, as GNU time reports it from its own child.

    Not wait4's ru_maxrss of our own child: Linux carries the RSS of the process that forked
    it across exec, so every child of this (large) Python process would show its size.
    """
    out = scratch / "rss"
    proc = subprocess.run(
        [GNU_TIME, "-f", "%M", "-o", str(out), *argv],
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} {argv[-1]} exited {proc.returncode} under {GNU_TIME}")
    return int(out.read_text().split()[-1]) / 1024.0


def summary(values: List[float], scale: float = 1.0) -> Dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median": round(statistics.median(ordered) * scale, 2),
        "p95": round(p95 * scale, 2),
        "min": round(ordered[0] * scale, 2),
        "n": len(ordered),
    }


def cpu_seconds(pids: List[int]) -> Dict[int, float]:
    """User + system CPU time of each live process of pids so far (psutil, from /proc)."""
    out: Dict[int, float] = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        out[pid] = times.user + times.system
    return out


class CpuMeter:
    """The CPU time that the processes pids() names spend inside the with block.

    Read before and after from each process' own counters (all its threads): a server's work
    for its clients, which no rusage of the client shows.  A process that appears meanwhile
    counts from zero.  Clock-tick resolution (10 ms): meant for batches, divided by their size.
    """

    def __init__(self, pids: Callable[[], List[int]]) -> None:
        self.pids = pids
        self.before: Dict[int, float] = {}
        self.seconds = 0.0

    def __enter__(self) -> CpuMeter:
        self.before = cpu_seconds(self.pids())
        return self

    def __exit__(self, *exc: object) -> None:
        after = cpu_seconds(self.pids())
        self.seconds = sum(max(0.0, spent - self.before.get(pid, 0.0)) for pid, spent in after.items())


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")


def parse_importtime(stderr: str) -> Tuple[Dict[str, Tuple[float, str]], float]:
    """python -X importtime's report: {module: (cumulative ms, what imported it)} and the total ms.

    A module is imported once: its line's cumulative time includes everything it imported that
    was not imported before.  The importer is the next line less indented ("-" at the top).
    """
    rows: List[Tuple[int, str, float]] = []
    for line in stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            rows.append((len(match.group(3)), match.group(4), int(match.group(2)) / 1000.0))
    found: Dict[str, Tuple[float, str]] = {}
    top = min((depth for depth, _, _ in rows), default=0)
    total = sum(ms for depth, _, ms in rows if depth == top)
    for index, (depth, name, ms) in enumerate(rows):
        if name in found:
            continue
        parent = next((n for d, n, _ in rows[index + 1 :] if d < depth), "-")
        found[name] = (ms, parent)
    return found, total


def _largest(times: Dict[str, List[float]], count: int) -> List[Dict[str, Any]]:
    medians = {name: statistics.median(ms) for name, ms in times.items()}
    ordered = sorted(medians, key=lambda name: medians[name], reverse=True)[:count]
    return [{"module": name, "cumulative_ms": round(medians[name], 2)} for name in ordered]


def direct_imports(stderr: str, of: str) -> List[Tuple[str, float]]:
    """The modules that module of (a top-level one) imported first, with their cumulative ms."""
    rows: List[Tuple[int, str, float]] = []
    for line in stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            rows.append((len(match.group(3)), match.group(4), int(match.group(2)) / 1000.0))
    at = next((i for i, (_, name, _) in enumerate(rows) if name == of), None)
    if at is None:
        return []
    depth = rows[at][0]
    children: List[Tuple[str, float]] = []
    for d, name, ms in reversed(rows[:at]):
        if d <= depth:
            break
        if d == depth + 2:  # one level deeper: importtime indents two spaces a level
            children.append((name, ms))
    return sorted(children, key=lambda item: item[1], reverse=True)


def profile_summary(path: Path) -> Dict[str, Any]:
    """A cProfile dump: the named functions' cumulative ms and calls, and the ten largest own times."""
    stats = pstats.Stats(str(path))
    table = stats.stats  # type: ignore[attr-defined]
    named: Dict[str, Dict[str, float]] = {}
    for label, (suffix, function) in PROFILED_FUNCTIONS.items():
        for (filename, _, name), (_, calls, _, cumulative, _) in table.items():
            if name == function and filename.endswith(suffix):
                named[label] = {"cumulative_ms": round(cumulative * 1000, 2), "calls": calls}
    own = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:10]
    return {
        "total_ms": round(stats.total_tt * 1000, 2),  # type: ignore[attr-defined]
        "named": named,
        "largest_own_time": [
            {
                "function": f"{Path(filename).name}:{line} {name}" if line else name,
                "own_ms": round(own_s * 1000, 2),
                "calls": calls,
            }
            for (filename, line, name), (_, calls, own_s, _, _) in own
        ],
    }


class Watch:
    """Runs probe every step_s in a thread and records the monotonic time it first held."""

    def __init__(self, probe: Callable[[], bool], step_s: float) -> None:
        self.probe = probe
        self.step_s = step_s
        self.at: Optional[float] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                held = self.probe()
            except Exception:  # a probe that fails has not seen it yet
                held = False
            if held:
                self.at = time.monotonic()
                return
            time.sleep(self.step_s)


def http_answers(url: str) -> bool:
    """Any HTTP status line from GET url: the API answers."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        return sock.recv(16).startswith(b"HTTP/1.")


def _utc_epoch(stamp: str) -> float:
    moment = datetime.datetime.fromisoformat(stamp.rstrip("Z"))
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


class HoldingListener:
    """A TCP listener on 127.0.0.1 that accepts every connection and holds it: the broker of
    the fake daemon (its children only need a connection to hold)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.held: List[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.runs = args.runs
        self.cycles = args.cycles
        self.dirs: List[Path] = []
        self.started: List[Agent] = []  # resources whose daemon may run: stopped at the end
        self.stack: Optional[OpenStack] = None
        self.results: Dict[str, Any] = {
            "monitor": {},
            "tokens": {},
            "lifecycle": {},
            "yardstick": {},
            "keystone": {},
            "backends": {},
            "fake_backends": {},
            "imports": {},
            "profile": {},
            "deep": {},
            "guard": {},
        }
        self.scratch = self._dir("cinder-ocf-bench-")
        self.scratch.chmod(0o700)
        self.api_token: Optional[Tuple[str, str]] = None
        self.api: Optional[Agent] = None

    def _dir(self, prefix: str) -> Path:
        path = open_dir(prefix)
        self.dirs.append(path)
        return path

    # -------------------------------------------------------------- set-up and tear-down
    def setup(self) -> None:
        venv = ensure_stack_venv()
        ensure_debian_packages(*STACK_PACKAGES, "time", "resource-agents", "curl")
        ensure_service_user(SERVICE_USER)
        RUN_BASE.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="bench-", dir=RUN_BASE))
        os.chmod(root, 0o755)
        self.dirs.append(root)
        self.stack = OpenStack(root=root, venv=venv, service_user=SERVICE_USER)
        t0 = time.monotonic()
        self.stack.start()
        LOG.info("stack up in %.1f s", time.monotonic() - t0)
        # Measured as installed: compiled, bound to this interpreter (a venv of /usr/bin/python3).
        import cinder_ocf  # noqa: PLC0415

        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(Path(cinder_ocf.__file__).parent)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.agents_dir = self._dir("cinder-ocf-bench-agents-")
        install_agents(str(self.agents_dir), sys.executable)
        self.noauth_conf = self._noauth_conf(self.stack.cinder_conf)

    def _read_conf(self, source: Path) -> configparser.ConfigParser:
        conf = configparser.ConfigParser(interpolation=None)
        conf.optionxform = str  # type: ignore[assignment,method-assign]
        conf.read(source)
        return conf

    @staticmethod
    def _write_conf(conf: configparser.ConfigParser, path: Path, group: Optional[int] = None) -> None:
        """Mode 0600 root (0640 root:group for a daemon's own): transport_url has a password."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            conf.write(out)
        if group is not None:
            os.chown(path, 0, group)
            os.chmod(path, 0o640)

    def _noauth_conf(self, source: Path) -> Path:
        """cinder.conf without the credentials of [keystone_authtoken]: the unauthenticated path."""
        conf = self._read_conf(source)
        for option in ("username", "password", "project_name"):
            conf.remove_option("keystone_authtoken", option)
        path = self.scratch / f"{source.stem}-noauth.conf"
        self._write_conf(conf, path)
        return path

    def _backends_conf(self, count: int) -> Path:
        """The stack's cinder.conf with count fake-driver backends, beside it (the daemon reads it
        as the service user)."""
        assert self.stack is not None
        conf = self._read_conf(self.stack.cinder_conf)
        names = [f"fake{index}" for index in range(1, count + 1)]
        for section in conf.sections():
            if conf.has_option(section, "volume_driver"):
                conf.remove_section(section)
        conf.set("DEFAULT", "enabled_backends", ",".join(names))
        for name in names:
            conf.add_section(name)
            conf.set(name, "volume_driver", FAKE_DRIVER)
            conf.set(name, "volume_backend_name", name)
        path = self.stack.cinder_etc / f"cinder-{count}-backends.conf"
        path.unlink(missing_ok=True)
        self._write_conf(conf, path, self.stack.service_user_ids()[1])
        return path

    def teardown(self) -> None:
        for resource in reversed(self.started):
            leader = resource.leader()
            try:
                resource("stop", timeout_s=STOP_TIMEOUT_S)
            except Exception:
                LOG.exception("stopping %s", resource.instance)
            if leader is not None:
                for pid in session_members(leader):  # only what our agent started
                    LOG.warning("%s: SIGKILL to leftover %d", resource.instance, pid)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        if self.stack is not None:
            try:
                self.stack.close()
            except Exception:
                LOG.exception("stopping the stack")
        for path in self.dirs:
            shutil.rmtree(path, ignore_errors=True)

    def resource(self, name: str, instance: str, rsctmp: Path, **extra: str) -> Agent:
        assert self.stack is not None
        return stack_resource(self.stack, self.agents_dir, name, rsctmp, instance, **extra)

    # -------------------------------------------------------------- what "healthy" looks like
    def _admin(self) -> Tuple[str, str]:
        if self.api_token is None:
            assert self.stack is not None
            token, body = get_token(self.stack.admin)
            self.api_token = (token, body["project"]["id"])
        return self.api_token

    def _heartbeat_since(self, name: str, since: float) -> Callable[[], bool]:
        """True once every host of the service is up in os-services with a heartbeat after since."""
        assert self.stack is not None
        token, project = self._admin()
        url = f"{self.stack.cinder_url}/v3/{project}/os-services?binary={name}"

        def probe() -> bool:
            answer = http_request("GET", url, headers={"X-Auth-Token": token}, timeout=2.0)
            if answer.status != 200:
                return False
            rows = {row["host"]: row for row in answer.json()["services"]}
            for host in SERVICES[name]:
                row = rows.get(host)
                if row is None or row.get("state") != "up" or not row.get("updated_at"):
                    return False
                if _utc_epoch(row["updated_at"]) < since:
                    return False
            return True

        return probe

    # -------------------------------------------------------------- start and stop
    def _serves(self, url: str) -> Callable[[], bool]:
        """True once cinder-api answers an authenticated GET 200: what its monitor calls healthy
        (the first one also waits for cinder-api's own first token validation)."""
        token, project = self._admin()
        return lambda: (
            http_request(
                "GET", f"{url}/v3/{project}/types", headers={"X-Auth-Token": token}, timeout=5.0
            ).status
            == 200
        )

    @staticmethod
    def _listening(resource: Agent, each_child: bool) -> Callable[[], bool]:
        """True once the daemon's processes that talk to the broker hold a connection to it:
        each backend child (cinder-volume), else any process of its tree."""

        def probe() -> bool:
            leader = resource.leader()
            if leader is None:
                return False
            root = psutil.Process(leader)
            talkers = root.children() if each_child else [root, *root.children(recursive=True)]

            def connected(proc: psutil.Process) -> bool:
                return any(
                    c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr[1] == AMQP_PORT
                    for c in proc.net_connections("tcp")
                )

            held = [connected(proc) for proc in talkers]
            return bool(held) and (all(held) if each_child else any(held))

        return probe

    def start(self, resource: Agent) -> Dict[str, Any]:
        """Start, timed against the moment the service is healthy as its monitor means it:
        cinder-api answers an authenticated GET (and, beside it, when it first answered GET /);
        an RPC service reports in os-services since the start and its processes hold their
        broker connections (its heartbeat alone can come before those)."""
        assert self.stack is not None
        since = time.time()
        name = resource.path.name
        probes: Dict[str, Tuple[Callable[[], bool], float]]
        if name == "cinder-api":
            url = self.stack.cinder_url
            probes = {"healthy": (self._serves(url), 0.01), "answers": (lambda: http_answers(url), 0.01)}
            what = "the API answers an authenticated GET 200 (the first answer to GET / beside it)"
        else:
            heartbeat = self._heartbeat_since(name, since)
            listening = self._listening(resource, each_child=name == "cinder-volume")
            probes = {"healthy": (lambda: listening() and heartbeat(), 0.05), "reported": (heartbeat, 0.05)}
            what = (
                "every host of the service is up in os-services with a heartbeat newer than the "
                "start, and its processes hold their broker connections (the heartbeat alone beside it)"
            )
        self.started.append(resource)
        t0, returned, seen = self._timed(resource, "start", START_TIMEOUT_S, probes)
        healthy = seen["healthy"]
        early = seen.get("answers", seen.get("reported"))
        return {
            "start_s": round(returned - t0, 3),
            "healthy_after_s": None if healthy is None else round(healthy - t0, 3),
            "overhead_s": None if healthy is None else round(returned - healthy, 3),
            "first_sign_overhead_s": None if early is None else round(returned - early, 3),
            "healthy_means": what,
        }

    @staticmethod
    def _timed(
        resource: Agent, action: str, timeout_s: float, probes: Dict[str, Tuple[Callable[[], bool], float]]
    ) -> Tuple[float, float, Dict[str, Optional[float]]]:
        """Run action while each probe is watched: (began, returned, {name: when it first held})."""
        t0 = time.monotonic()
        with contextlib.ExitStack() as stack:
            watches = {
                name: stack.enter_context(Watch(probe, step)) for name, (probe, step) in probes.items()
            }
            run = measured(resource, action, timeout_s)
            returned = time.monotonic()
        if run.rc != 0:
            raise RuntimeError(f"{resource.instance} {action}: rc {run.rc}: {run.stderr[-2000:]}")
        return t0, returned, {name: watch.at for name, watch in watches.items()}

    def stop(self, resource: Agent) -> Dict[str, Any]:
        leader = resource.leader()
        members = session_members(leader) if leader is not None else []

        def gone() -> bool:
            return not any(pid_alive(pid) for pid in members)

        t0, returned, seen = self._timed(resource, "stop", STOP_TIMEOUT_S, {"gone": (gone, 0.002)})
        exited = seen["gone"]
        return {
            "stop_s": round(returned - t0, 3),
            "processes": len(members),
            "tree_gone_after_s": None if exited is None else round(exited - t0, 3),
            "overhead_s": None if exited is None else round(returned - exited, 3),
        }

    def lifecycle(self, resource: Agent) -> None:
        """cycles x (start, stop), then a start that stays for the monitors."""
        starts, stops = [], []
        for _ in range(self.cycles):
            starts.append(self.start(resource))
            stops.append(self.stop(resource))
        starts.append(self.start(resource))
        self.results["lifecycle"][resource.path.name] = {"starts": starts, "stops": stops}
        LOG.info(
            "%s: start overhead %s s, stop overhead %s s",
            resource.path.name,
            [s["overhead_s"] for s in starts],
            [s["overhead_s"] for s in stops],
        )

    def final_stop(self, resource: Agent) -> None:
        self.results["lifecycle"][resource.path.name]["stops"].append(self.stop(resource))
        self.started.remove(resource)

    # -------------------------------------------------------------- monitors
    def shell(self, leader_resource: Agent, script: Path = SHELL_AGENT) -> Tuple[List[str], Dict[str, str]]:
        """The 2013 agent's pid-only monitor (or script), pointed at the same daemon's pid."""
        assert self.stack is not None
        leader = leader_resource.leader()
        pid_file = self.scratch / f"{leader_resource.instance}-2013.pid"
        pid_file.write_text(f"{leader}\n")
        shell = Agent(
            script,
            self.scratch,
            f"{leader_resource.instance}-2013",
            {
                "binary": str(self.stack.cinder_bin("cinder-api")),
                "config": str(self.stack.cinder_conf),
                "user": SERVICE_USER,
                "pid": str(pid_file),
            },
        )
        return shell.argv("monitor"), _environment(shell, "monitor", MONITOR_TIMEOUT_S)

    def monitor_paths(
        self,
        resource: Agent,
        partner: Optional[Agent] = None,
        servers: bool = False,
        paths: Tuple[str, ...] = tuple(PATHS),
    ) -> Dict[str, Any]:
        """Each path's monitor, alternately with the 2013 pid-only monitor (and, on the cached
        path, with partner's cached-token monitor and the bare interpreter, when given); the
        figures by path.

        servers: also read the CPU time Keystone's and cinder-api's processes spend during each
        path's batch, and count Keystone's token validations (cinder-api's)."""
        noauth = Agent(
            resource.path,
            resource.rsctmp,
            resource.instance + "-noauth",
            {**resource.params, "config": str(self.noauth_conf), "pid": str(resource.pid_file())},
        )
        shell_argv, shell_env = self.shell(resource)
        # What any monitor on this interpreter and the declared libraries costs before it
        # does anything: the interpreter alone, then with the imports every monitor needs.
        floor_argvs = {
            "interpreter_floor": [sys.executable, "-c", "pass"],
            "libraries_floor": [sys.executable, "-c", f"import {', '.join(MONITOR_LIBRARIES)}"],
        }
        out: Dict[str, Any] = {}
        for path in paths:
            label = PATHS[path]
            target = noauth if path == "noauth" else resource
            token_file = target.state_file("token")
            # One run not counted: it fills the cinder.conf cache (and the token cache).
            self._check(measured(target, "monitor"), target, path)
            before = self.token_requests()
            validations = self.access_log_count(TOKEN_VALIDATION)
            ours: List[Run] = []
            theirs: List[Run] = []
            ours_rss: List[float] = []
            theirs_rss: List[float] = []
            partners: List[Run] = []
            floors: Dict[str, List[Run]] = {name: [] for name in floor_argvs}
            with self.server_meters() as (keystone, api):
                for _ in range(self.runs):
                    if path == "fetch":
                        token_file.unlink(missing_ok=True)
                    ours.append(self._check(measured(target, "monitor"), target, path))
                    theirs.append(run_measured(shell_argv, shell_env, MONITOR_TIMEOUT_S))
                    if theirs[-1].rc != 0:
                        raise RuntimeError(f"2013 monitor: rc {theirs[-1].rc}: {theirs[-1].stderr[-500:]}")
                    if path == "cached" and partner is not None:
                        partners.append(self._check(measured(partner, "monitor"), partner, path))
                    if path == "cached" and servers:
                        for name, argv in floor_argvs.items():
                            floors[name].append(
                                run_measured(argv, {"PATH": "/usr/bin:/bin"}, MONITOR_TIMEOUT_S)
                            )
                    if path == "fetch":
                        token_file.unlink(missing_ok=True)
                    argv, env = target.argv("monitor"), _environment(target, "monitor", MONITOR_TIMEOUT_S)
                    ours_rss.append(peak_rss_mib(argv, env, MONITOR_TIMEOUT_S + 10, self.scratch))
                    theirs_rss.append(
                        peak_rss_mib(shell_argv, shell_env, MONITOR_TIMEOUT_S + 10, self.scratch)
                    )
            requests = self.token_requests() - before
            wall = summary([r.wall for r in ours], 1000)
            cpu = summary([r.cpu for r in ours], 1000)
            shell_wall = summary([r.wall for r in theirs], 1000)
            shell_cpu = summary([r.cpu for r in theirs], 1000)
            warnings = sorted(
                {ln.split(": ", 2)[-1][:200] for r in ours for ln in r.stderr.splitlines() if "WARNING" in ln}
            )
            row: Dict[str, Any] = {
                "label": label,
                "wall_ms": wall,
                "cpu_ms": cpu,
                "peak_rss_mib": summary(ours_rss),
                "shell_wall_ms": shell_wall,
                "shell_cpu_ms": shell_cpu,
                "shell_peak_rss_mib": summary(theirs_rss),
                "ratio_to_shell": round(wall["median"] / shell_wall["median"], 2),
                "cpu_ratio_to_shell": round(cpu["median"] / shell_cpu["median"], 2),
                "keystone_token_requests": requests,
                "monitor_runs": 2 * self.runs,
                "warnings": warnings,
                "load_average": [round(x, 2) for x in os.getloadavg()],  # at the batch's end
            }
            if partners and partner is not None:
                partner_wall = summary([r.wall for r in partners], 1000)
                partner_cpu = summary([r.cpu for r in partners], 1000)
                row["partner"] = {
                    "agent": partner.path.name,
                    "wall_ms": partner_wall,
                    "cpu_ms": partner_cpu,
                    "ratio_wall": round(wall["median"] / partner_wall["median"], 2),
                    "ratio_cpu": round(cpu["median"] / partner_cpu["median"], 2),
                }
            for name, runs in floors.items():
                if runs:
                    row[name] = {
                        "argv": " ".join(floor_argvs[name]),
                        "wall_ms": summary([r.wall for r in runs], 1000),
                        "cpu_ms": summary([r.cpu for r in runs], 1000),
                    }
            if servers:
                # Every run of ours in the batch, the RSS runs too; the 2013 pid-only monitor
                # and the bare interpreter ask no server anything.
                row["servers"] = {
                    "monitors": 2 * self.runs,
                    "keystone_cpu_ms": round(keystone.seconds * 1000, 1),
                    "cinder_api_cpu_ms": round(api.seconds * 1000, 1),
                    "keystone_validations": self.access_log_count(TOKEN_VALIDATION) - validations,
                }
            out[path] = row
            LOG.info(
                "%s %s: wall %.1f ms (2013: %.1f ms, x%.2f), cpu %.1f ms (2013: %.1f ms), rss %.1f MiB, "
                "%d token requests%s",
                resource.path.name,
                path,
                wall["median"],
                shell_wall["median"],
                row["ratio_to_shell"],
                cpu["median"],
                shell_cpu["median"],
                row["peak_rss_mib"]["median"],
                requests,
                f"; {partner.path.name} beside it x{row['partner']['ratio_wall']}"
                if partner is not None and "partner" in row
                else "",
            )
        return out

    @contextlib.contextmanager
    def server_meters(self) -> Iterator[Tuple[CpuMeter, CpuMeter]]:
        """CPU meters on Keystone's processes and on cinder-api's (the leader and its workers)."""
        assert self.stack is not None
        stack, api = self.stack, self.api

        def api_pids() -> List[int]:
            leader = api.leader() if api is not None else None
            return [] if leader is None else [leader, *children(leader, recursive=True)]

        with CpuMeter(stack.keystone_pids) as keystone, CpuMeter(api_pids) as api_meter:
            yield keystone, api_meter

    @staticmethod
    def _check(run: Run, resource: Agent, path: str) -> Run:
        if run.rc != 0:
            raise RuntimeError(f"{resource.instance} monitor ({path}): rc {run.rc}: {run.stderr[-1500:]}")
        return run

    # -------------------------------------------------------------- Keystone's side
    def token_requests(self) -> int:
        """Token requests Keystone logged from anything but this harness (urllib)."""
        return self.access_log_count(TOKEN_REQUEST)

    def access_log_count(self, request: str) -> int:
        """Requests (method and path) Keystone logged from anything but this harness (urllib)."""
        assert self.stack is not None
        try:
            lines = self.stack.keystone_access_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return 0
        return sum(1 for ln in lines if request in ln and "Python-urllib" not in ln)

    def guard_cost(self, resource: Agent) -> None:
        """Issue 11: the cached-token monitor with guard_service_host on (the default: the
        broker's consumer count, one AMQP connection) and off, alternately in one batch; the
        copy scan runs in both (it is not a parameter's)."""
        off = Agent(
            resource.path,
            resource.rsctmp,
            resource.instance,
            {**resource.params, "guard_service_host": "false"},
        )
        self._check(measured(off, "monitor"), off, "guard off")  # its parameters' facts cached
        on_runs: List[Run] = []
        off_runs: List[Run] = []
        for _ in range(self.runs):
            on_runs.append(self._check(measured(resource, "monitor"), resource, "guard on"))
            off_runs.append(self._check(measured(off, "monitor"), off, "guard off"))
        figures = {
            side: {
                "wall_ms": summary([r.wall for r in runs], 1000),
                "cpu_ms": summary([r.cpu for r in runs], 1000),
            }
            for side, runs in (("on", on_runs), ("off", off_runs))
        }
        self.results["guard"][resource.path.name] = figures
        LOG.info(
            "%s monitor, guard on / off: %.1f / %.1f ms wall", resource.path.name,
            figures["on"]["wall_ms"]["median"], figures["off"]["wall_ms"]["median"],
        )  # fmt: skip

    def tokens_per_hour(self, resource: Agent) -> None:
        """Monitors from an empty token cache, counted on Keystone's side."""
        monitors = self.args.token_monitors
        resource.state_file("token").unlink(missing_ok=True)
        before = self.token_requests()
        fetched_at = time.time()
        for _ in range(monitors):
            self._check(measured(resource, "monitor"), resource, "tokens")
        observed = self.token_requests() - before
        lifetime = self._token_lifetime(resource, fetched_at)
        per_hour_monitors = 3600.0 / INTERVAL_S
        renewals = 3600.0 / max(1.0, lifetime - RENEW_MARGIN_S)
        extra = max(0, observed - 1) * per_hour_monitors / max(1, monitors - 1)
        self.results["tokens"][resource.path.name] = {
            "monitors": monitors,
            "observed_requests": observed,
            "token_lifetime_s": round(lifetime),
            "renew_margin_s": RENEW_MARGIN_S,
            "requests_per_hour": round(renewals + extra, 2),
            "requests_per_token_lifetime": round((renewals + extra) * lifetime / 3600.0, 2),
            "shell_2013_per_hour": per_hour_monitors,
        }
        LOG.info(
            "%s: %d token requests in %d monitors; %.2f per hour",
            resource.path.name,
            observed,
            monitors,
            renewals + extra,
        )

    @staticmethod
    def _token_lifetime(resource: Agent, fetched_at: float) -> float:
        """From the cache the agent wrote: keystoneauth1's auth state, its token's expires_at."""
        record = json.loads(resource.state_file("token").read_text())
        try:
            return float(token_of(str(record["auth_state"]), "").expires_at) - fetched_at
        except (KeyError, ValueError):
            raise RuntimeError("no token in the token cache") from None

    # -------------------------------------------------------------- the bash + curl yardstick
    def yardstick(self, api: Agent) -> None:
        """The 2013 agent's full authenticated monitor (bash + curl, Keystone v3) alternately
        with our cached-token cinder-api monitor; then a batch of it alone, Keystone's and
        cinder-api's CPU read before and after."""
        assert self.stack is not None
        token, body = get_token(self.stack.service)  # the credentials our monitor takes
        project = body["project"]["id"]
        del token
        request = self.scratch / "token-request.json"
        request.unlink(missing_ok=True)
        fd = os.open(request, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # the password
        with os.fdopen(fd, "w") as out:
            json.dump(self.stack.service.auth_body(), out)
        argv, env = self.shell(api, YARDSTICK)
        env.update(
            {
                "OCF_RESKEY_url": f"{self.stack.cinder_url}/v3/{project}/types",
                "OCF_RESKEY_keystone_get_token_url": f"{self.stack.keystone_url}/auth/tokens",
                "OCF_RESKEY_token_request_file": str(request),
            }
        )

        def yard() -> Run:
            run = run_measured(argv, env, MONITOR_TIMEOUT_S)
            if run.rc != 0:
                raise RuntimeError(f"bash + curl check: rc {run.rc}: {run.stderr[-500:]}")
            return run

        yard()  # not counted: cinder-api's first request with a token warms its caches
        self._check(measured(api, "monitor"), api, "cached")
        ours: List[Run] = []
        theirs: List[Run] = []
        for _ in range(self.runs):
            ours.append(self._check(measured(api, "monitor"), api, "cached"))
            theirs.append(yard())
        rss = [peak_rss_mib(argv, env, MONITOR_TIMEOUT_S + 10, self.scratch) for _ in range(5)]
        before, validations = self.token_requests(), self.access_log_count(TOKEN_VALIDATION)
        with self.server_meters() as (keystone, cinder_api):
            for _ in range(self.runs):
                yard()
        wall, cpu = summary([r.wall for r in ours], 1000), summary([r.cpu for r in ours], 1000)
        their_wall, their_cpu = (
            summary([r.wall for r in theirs], 1000),
            summary([r.cpu for r in theirs], 1000),
        )
        self.results["yardstick"] = {
            "script": YARDSTICK.name,
            "runs": self.runs,
            "wall_ms": their_wall,
            "cpu_ms": their_cpu,
            "peak_rss_mib": summary(rss),
            "ours_wall_ms": wall,
            "ours_cpu_ms": cpu,
            "ratio_wall": round(wall["median"] / their_wall["median"], 2),
            "ratio_cpu_client": round(cpu["median"] / their_cpu["median"], 2),
            "batch_runs": self.runs,
            "token_requests": self.token_requests() - before,
            "keystone_validations": self.access_log_count(TOKEN_VALIDATION) - validations,
            "keystone_cpu_ms_per_run": round(keystone.seconds * 1000 / self.runs, 2),
            "cinder_api_cpu_ms_per_run": round(cinder_api.seconds * 1000 / self.runs, 2),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
        LOG.info(
            "bash + curl: wall %.1f ms, client cpu %.1f ms, Keystone %.1f ms per run; ours beside it: "
            "wall %.1f ms (x%.2f), cpu %.1f ms",
            their_wall["median"],
            their_cpu["median"],
            self.results["yardstick"]["keystone_cpu_ms_per_run"],
            wall["median"],
            self.results["yardstick"]["ratio_wall"],
            cpu["median"],
        )

    def token_validations(self) -> None:
        """What one validation of a user's token costs Keystone (GET /v3/auth/tokens, as cinder-api's
        keystonemiddleware asks it when its cache of that token expires)."""
        assert self.stack is not None
        admin, _ = self._admin()
        user_token, _ = get_token(self.stack.service)
        headers = {"X-Auth-Token": admin, "X-Subject-Token": user_token}
        url = f"{self.stack.keystone_url}/auth/tokens"
        with self.server_meters() as (keystone, _api):
            for _ in range(self.runs):
                answer = http_request("GET", url, headers=headers, timeout=10.0)
                if answer.status != 200:
                    raise RuntimeError(f"token validation: HTTP {answer.status}")
        self.results["keystone"]["validation_cpu_ms"] = round(keystone.seconds * 1000 / self.runs, 2)
        self.results["keystone"]["validations"] = self.runs
        self.results["keystone"]["middleware_token_cache_s"] = MIDDLEWARE_TOKEN_CACHE_S
        LOG.info("Keystone: %.1f ms CPU per token validation", self.results["keystone"]["validation_cpu_ms"])

    # -------------------------------------------------------------- imports and profile
    def imports(self, resource: Agent) -> None:
        """python -X importtime of the cached-token monitor, IMPORT_RUNS times: each module's
        cumulative import time (median) and what imported it."""
        argv = [sys.executable, "-X", "importtime", *resource.argv("monitor")]
        env = _environment(resource, "monitor", MONITOR_TIMEOUT_S)
        self._check(measured(resource, "monitor"), resource, "cached")
        runs: List[Tuple[Dict[str, Tuple[float, str]], float]] = []
        walls: List[float] = []
        tops: Dict[str, List[float]] = {}
        pulled: Dict[str, List[float]] = {}
        for _ in range(IMPORT_RUNS):
            run = run_measured(argv, env, MONITOR_TIMEOUT_S + 10)
            if run.rc != 0:
                raise RuntimeError(f"{resource.instance} monitor -X importtime: rc {run.rc}")
            runs.append(parse_importtime(run.stderr))
            walls.append(run.wall)
            # Each import made at the top level (the interpreter's start, the script, what the
            # agent imports when it runs), and what the agent's own modules pulled in first.
            found, _ = runs[-1]
            for name in found:
                if found[name][1] == "-":
                    tops.setdefault(name, []).append(found[name][0])
                    if name.startswith("cinder_ocf"):
                        for child, ms in direct_imports(run.stderr, name):
                            pulled.setdefault(child, []).append(ms)
        modules: Dict[str, Any] = {}
        for name in IMPORTS:
            seen = [found[name] for found, _ in runs if name in found]
            if seen:
                modules[name] = {
                    "cumulative_ms": round(statistics.median(ms for ms, _ in seen), 2),
                    "imported_by": seen[0][1],
                }
            else:
                modules[name] = None  # not imported on this path
        self.results["imports"][resource.path.name] = {
            "runs": IMPORT_RUNS,
            "all_imports_ms": round(statistics.median(total for _, total in runs), 2),
            "modules": modules,
            "wall_ms_with_importtime": round(statistics.median(walls) * 1000, 2),
            "modules_imported": round(statistics.median(len(found) for found, _ in runs)),
            "top_level": _largest(tops, 12),
            "pulled_in_by_cinder_ocf": _largest(pulled, 15),
        }
        LOG.info(
            "%s imports: %.1f ms in all; %s",
            resource.path.name,
            self.results["imports"][resource.path.name]["all_imports_ms"],
            ", ".join(f"{n} {m['cumulative_ms']} ms" if m else f"{n} -" for n, m in modules.items()),
        )

    def profile(self, resource: Agent, key: str) -> None:
        """One cached-token monitor under cProfile: where its time goes (cProfile slows it)."""
        dump = self.scratch / f"{key}.prof"
        dump.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "cProfile", "-o", str(dump), *resource.argv("monitor")]
        self._check(
            run_measured(argv, _environment(resource, "monitor", MONITOR_TIMEOUT_S), MONITOR_TIMEOUT_S + 10),
            resource,
            "cached (cProfile)",
        )
        self.results["profile"][key] = profile_summary(dump)

    # -------------------------------------------------------------- cinder-volume, 1 to 16 backends
    def backends(self, api: Agent) -> None:
        """cinder-volume with each count of BACKEND_COUNTS fake-driver backends (one process each),
        its cached-token and no-credentials monitors alternately with the 2013 pid-only monitor."""
        for count in BACKEND_COUNTS:
            try:
                self._backends(api, count)
            except RuntimeError as err:  # the other counts are still worth measuring
                LOG.error("cinder-volume with %d backends: %s", count, str(err)[-1500:])
                self.results["backends"][str(count)] = {"backends": count, "error": str(err)[-500:]}

    def _backends(self, api: Agent, count: int) -> None:
        config = self._backends_conf(count)
        rsctmp = self._dir("cinder-ocf-bench-rsc-")
        # The parent creates each backend's service (its driver, its coordination, its database
        # rows) before it forks the next, and every child starts meanwhile: 16 take ~4 s here.
        grace = 60 + 2 * count
        resource = self.resource(
            "cinder-volume",
            f"bench-cinder-volume-{count}",
            rsctmp,
            config=str(config),
            start_grace=str(grace),
        )
        self.started.append(resource)
        try:
            self._backends_measured(api, resource, config, count, grace)
        finally:
            self.final_stop_quiet(resource)

    def _backends_measured(self, api: Agent, resource: Agent, config: Path, count: int, grace: int) -> None:
        t0 = time.monotonic()
        self._check(measured(resource, "start", grace + 30.0), resource, "start")
        started_s = time.monotonic() - t0
        leader = resource.leader()
        members = session_members(leader) if leader is not None else []
        saved, self.noauth_conf = self.noauth_conf, self._noauth_conf(config)
        began = time.monotonic()
        try:
            with CpuMeter(members.copy) as daemon:
                figures = self.monitor_paths(resource, partner=api, paths=("cached", "noauth"))
        finally:
            self.noauth_conf = saved
        busy = daemon.seconds / max(0.001, time.monotonic() - began)
        self.results["backends"][str(count)] = {
            "backends": count,
            "processes": len(members),
            "node_processes": len(psutil.pids()),
            "start_s": round(started_s, 2),
            "daemon_cpu_share": round(busy, 3),  # of one core, while its monitors ran
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "cached": figures["cached"],
            "noauth": figures["noauth"],
        }
        LOG.info(
            "cinder-volume, %d backends: started in %.1f s; it used %.0f%% of a core meanwhile",
            count,
            started_s,
            100 * busy,
        )
        if count in (BACKEND_COUNTS[0], BACKEND_COUNTS[-1]):
            self.profile(resource, f"cinder-volume, {count} backend{'s' if count > 1 else ''}")

    def fake_backends(self, api: Agent) -> None:
        """The same counts with the unit tests' fake daemon, all three running at once and
        monitored in turn: the monitor's own cost per backend, paired, whatever the machine's
        load does meanwhile, and without cinder's children busy beside it (no credentials: no
        heartbeat to check)."""
        broker = HoldingListener()
        binary = self.scratch / "fake-cinder-volume"
        binary.write_text(f"#!{sys.executable}\n" + FAKE_DAEMON.read_text())
        binary.chmod(0o755)
        made: Dict[int, Agent] = {}
        try:
            for count in BACKEND_COUNTS:
                config = self.scratch / f"fake-{count}-backends.conf"
                config.write_text(
                    f"[DEFAULT]\nhost = cinder-fake-{count}\n"
                    f"enabled_backends = {','.join(f'b{i}' for i in range(1, count + 1))}\n"
                    f"transport_url = rabbit://bench:unused@127.0.0.1:{broker.port}/\n"
                    "[fake]\nfork = yes\n"
                )
                resource = Agent(
                    self.agents_dir / "cinder-volume",
                    self._dir("cinder-ocf-bench-rsc-"),
                    f"bench-fake-volume-{count}",
                    # The holding listener is no AMQP broker: nothing to count the servers of a
                    # service host with (a broker that accepts and never answers costs the
                    # consumer count its whole check_timeout).
                    {
                        "binary": str(binary),
                        "config": str(config),
                        "user": "root",
                        "start_grace": "30",
                        "guard_service_host": "false",
                    },
                )
                self.started.append(resource)
                made[count] = resource
                self._check(measured(resource, "start", 60.0), resource, "start")
            shell_argv, shell_env = self.shell(made[BACKEND_COUNTS[0]])
            for resource in made.values():
                self._check(measured(resource, "monitor"), resource, "fake")  # fills the caches
            runs: Dict[int, List[Run]] = {count: [] for count in made}
            shells: List[Run] = []
            for _ in range(self.runs):
                for count, resource in made.items():
                    runs[count].append(self._check(measured(resource, "monitor"), resource, "fake"))
                shells.append(run_measured(shell_argv, shell_env, MONITOR_TIMEOUT_S))
            for count, resource in made.items():
                leader = resource.leader()
                wall, cpu = (
                    summary([r.wall for r in runs[count]], 1000),
                    summary([r.cpu for r in runs[count]], 1000),
                )
                self.results["fake_backends"][str(count)] = {
                    "backends": count,
                    "processes": len(session_members(leader)) if leader is not None else 0,
                    "node_processes": len(psutil.pids()),
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                    "noauth": {
                        "wall_ms": wall,
                        "cpu_ms": cpu,
                        "shell_wall_ms": summary([r.wall for r in shells], 1000),
                    },
                }
                LOG.info(
                    "fake cinder-volume, %d backends: wall %.1f ms, cpu %.1f ms",
                    count,
                    wall["median"],
                    cpu["median"],
                )
            self.profile(made[BACKEND_COUNTS[-1]], f"fake cinder-volume, {BACKEND_COUNTS[-1]} backends")
        finally:
            for resource in reversed(list(made.values())):
                self.final_stop_quiet(resource)
            broker.close()

    def final_stop_quiet(self, resource: Agent) -> None:
        """stop, not counted in the lifecycle figures; the teardown's to retry if it fails."""
        self._check(measured(resource, "stop", STOP_TIMEOUT_S), resource, "stop")
        self.started.remove(resource)

    # -------------------------------------------------------------- depth 20 (issue 12)
    def deep_detection(self) -> None:
        """How long until a SIGSTOPped service is reported: the depth-20 monitor (a round trip
        over the RPC bus) against the heartbeat path (os-services says down), for a backend
        process of cinder-volume and for cinder-scheduler, at the default check_timeout."""
        assert self.stack is not None
        names = ("cinder-scheduler", "cinder-volume")
        agents = {
            name: self.resource(name, f"bench-deep-{name}", self._dir("cinder-ocf-bench-rsc-"))
            for name in names
        }
        for agent in agents.values():
            self.started.append(agent)
            self._check(measured(agent, "start", START_TIMEOUT_S), agent, "start")
        try:
            for name, agent in agents.items():
                leader = agent.leader()
                assert leader is not None
                silent = children(leader)[-1] if name == "cinder-volume" else leader
                self.results["deep"][name] = self._silent_seen(agent, silent)
                LOG.info("%s silent: %s", name, self.results["deep"][name])
        finally:
            for agent in agents.values():
                self.final_stop_quiet(agent)

    def _silent_seen(self, agent: Agent, silent: int) -> Dict[str, Any]:
        deep = {"OCF_CHECK_LEVEL": "20", "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1"}

        def monitor(env: Dict[str, str]) -> Run:
            return run_measured(agent.argv("monitor"), {**_environment(agent, "monitor", 60.0), **env}, 70.0)

        healthy = time.monotonic() + 60
        while monitor(deep).rc != 0:  # the scheduler learns of the backends within seconds
            if time.monotonic() > healthy:
                raise RuntimeError(f"{agent.instance}: the depth-20 monitor never passed")
            time.sleep(1)
        figures: Dict[str, Any] = {}
        for path, env in (("depth 20", deep), ("heartbeat", {})):
            os.kill(silent, signal.SIGSTOP)
            began = time.monotonic()
            try:
                while True:
                    run = monitor(env)
                    if run.rc == 1 or time.monotonic() - began > 120:
                        break
                    time.sleep(0.5)
                reason = run.stderr.rsplit("ocf-exit-reason:", 1)[-1].strip()[:300]
                figures[path] = {
                    "seen_after_s": round(time.monotonic() - began, 1),
                    "rc": run.rc,
                    "reason": reason,
                }
            finally:
                os.kill(silent, signal.SIGCONT)
            healthy = time.monotonic() + 90
            while monitor(deep).rc != 0:  # reporting and answering again before the next path
                if time.monotonic() > healthy:
                    raise RuntimeError(f"{agent.instance}: not healthy again after SIGCONT")
                time.sleep(1)
        assert self.stack is not None
        conf = self._read_conf(self.stack.cinder_conf)
        return {
            "check_timeout_s": int(agent.params.get("check_timeout", "10")),  # the agent's default
            "service_down_time_s": conf.getint("DEFAULT", "service_down_time", fallback=60),
            "report_interval_s": conf.getint("DEFAULT", "report_interval", fallback=10),
            **figures,
        }

    # -------------------------------------------------------------- the whole run
    def run(self) -> None:
        self.setup()
        assert self.stack is not None
        api_tmp = self._dir("cinder-ocf-bench-rsc-")
        api = self.api = self.resource("cinder-api", "bench-cinder-api", api_tmp)
        self.lifecycle(api)
        self.results["monitor"]["cinder-api"] = self.monitor_paths(api, servers=True)
        self.yardstick(api)
        self.token_validations()
        self.imports(api)
        self.profile(api, "cinder-api")
        self.tokens_per_hour(api)
        for name in SERVICES:
            if self.args.agents and name not in self.args.agents:
                continue
            rsctmp = self._dir("cinder-ocf-bench-rsc-")
            resource = self.resource(name, f"bench-{name}", rsctmp)
            self.lifecycle(resource)
            self.results["monitor"][name] = self.monitor_paths(resource, partner=api)
            if name in GUARDED:
                self.guard_cost(resource)
            if name == "cinder-volume":
                self.imports(resource)
            self.tokens_per_hour(resource)
            self.final_stop(resource)
        if not self.args.agents or "cinder-volume" in self.args.agents:
            self.backends(api)
            self.fake_backends(api)
        if not self.args.agents or "cinder-volume" in self.args.agents:
            self.deep_detection()
        self.final_stop(api)


# ------------------------------------------------------------------ the machine


def machine() -> Dict[str, Any]:
    def version(package: str) -> str:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
        )
        return out.stdout.strip()

    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": f"{sys.version.split()[0]} ({sys.executable})",
        "resource-agents": version("resource-agents"),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def measure(args: argparse.Namespace) -> Dict[str, Any]:
    """Everything measured, as results.json has it (less the targets: benchmarks.report)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    began = time.monotonic()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    bench = Bench(args)
    try:
        bench.run()
    finally:
        bench.teardown()
    results = {
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {**machine(), "load_average_at_start": load_at_start},
        "runs": args.runs,
        "cycles": args.cycles,
        "token_monitors": args.token_monitors,
        "interval_s": INTERVAL_S,
        "duration_s": round(time.monotonic() - began, 1),
        **bench.results,
    }
    for key, name in (
        ("cluster", "cluster-results.json"),
        ("cluster_aa", "cluster-aa-results.json"),
        ("cluster_constraints", "cluster-constraints-results.json"),
    ):
        written = HERE / name
        if written.exists():
            results[key] = json.loads(written.read_text())
    return results
