"""make bench: what the agents cost, measured against the real services of the test stack.

Starts RabbitMQ and Keystone (lab/stack), runs cinder-api, cinder-volume, cinder-scheduler
and cinder-backup through our agents as real processes, exactly as Pacemaker would run them,
and measures:

* monitor wall time, CPU time and peak RSS (median, p95) over --runs runs, for the cached-token
  path, the path that must fetch a token, and the unauthenticated path, each run alternately
  with the 2013 shell agent's pid-only cinder-api monitor (benchmarks/cinder-api-2013-monitor.sh);
* Keystone token requests, counted in Keystone's own access log;
* start overhead (the service healthy -> start returns) and stop overhead (the process tree
  gone -> stop returns);
* the cluster figures tests/cluster wrote to benchmarks/cluster-results.json, if any.

Writes benchmarks/results.json and benchmarks/results.md and refreshes the README's table
between <!-- bench:start --> and <!-- bench:end -->.  Needs root (services run as `cinder`).
Everything it starts is stopped by PID, on failure and on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import configparser
import datetime
import json
import logging
import os
import platform
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
from typing import Any, Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cinder_ocf.auth import RENEW_MARGIN_S  # noqa: E402
from cinder_ocf.cli import install_agents  # noqa: E402
from lab.stack.install import ensure_debian_packages, ensure_service_user, ensure_stack_venv  # noqa: E402
from lab.stack.openstack import CINDER_HOST, OpenStack, get_token, http_request  # noqa: E402

LOG = logging.getLogger("bench")
HERE = ROOT / "benchmarks"
SHELL_AGENT = HERE / "cinder-api-2013-monitor.sh"
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
AGENT_ORDER = ["cinder-api", *SERVICES]
PATHS = {
    "cached": "cached token (the recurring monitor)",
    "fetch": "must fetch a token",
    "noauth": "no credentials",
}
TOKEN_REQUEST = '"POST /v3/auth/tokens '


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
    finally:
        watchdog.cancel()
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait
    return Run(wall, usage.ru_utime + usage.ru_stime, proc.returncode, err.decode(errors="replace"))


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


# ------------------------------------------------------------------ resources


class Resource:
    """One resource: an agent executable, its parameters, its HA_RSCTMP (as tests/conftest.py)."""

    def __init__(self, path: Path, rsctmp: Path, instance: str, params: Dict[str, str]) -> None:
        self.path = path
        self.name = path.name
        self.rsctmp = rsctmp
        self.instance = instance
        self.params = dict(params)

    def env(self, action: str, timeout_s: float) -> Dict[str, str]:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "OCF_ROOT": "/usr/lib/ocf",
            "OCF_RESOURCE_INSTANCE": self.instance,
            "OCF_RESOURCE_TYPE": self.name,
            "OCF_RESOURCE_PROVIDER": "openstack",
            "HA_RSCTMP": str(self.rsctmp),
            "OCF_RESKEY_CRM_meta_timeout": str(int(timeout_s * 1000)),
        }
        if action == "monitor":
            env["OCF_RESKEY_CRM_meta_interval"] = str(int(INTERVAL_S * 1000))
        env.update({f"OCF_RESKEY_{k}": v for k, v in self.params.items()})
        return env

    def argv(self, action: str) -> List[str]:
        return [str(self.path), action]

    def run(self, action: str, timeout_s: float = MONITOR_TIMEOUT_S) -> Run:
        return run_measured(self.argv(action), self.env(action, timeout_s), timeout_s + 10)

    def state_file(self, suffix: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_.:" else "_" for c in self.instance)
        return self.rsctmp / f"cinder-ocf-{safe}.{suffix}"

    def pid_file(self) -> Path:
        return Path(self.params.get("pid") or self.rsctmp / f"{self.instance}.pid")

    def leader(self) -> Optional[int]:
        try:
            return int(self.pid_file().read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def open_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.chmod(0o755)  # the daemons' user must traverse it; only root writes
    return path


def proc_state(pid: int) -> Optional[Tuple[str, int]]:
    """(state, session id) of a live process; None when gone or a zombie."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else (fields[0], int(fields[3]))


def session_members(leader: int) -> List[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            state = proc_state(int(name))
            if state is not None and state[1] == leader:
                out.append(int(name))
    return out


class Poller:
    """Runs probe every step_s in a thread and records the monotonic time it first held."""

    def __init__(self, probe: Callable[[], bool], step_s: float) -> None:
        self.probe = probe
        self.step_s = step_s
        self.at: Optional[float] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Poller:
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


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.runs = args.runs
        self.cycles = args.cycles
        self.dirs: List[Path] = []
        self.started: List[Resource] = []  # resources whose daemon may run: stopped at the end
        self.stack: Optional[OpenStack] = None
        self.results: Dict[str, Any] = {"monitor": {}, "tokens": {}, "lifecycle": {}}
        self.scratch = self._dir("cinder-ocf-bench-")
        self.scratch.chmod(0o700)
        self.api_token: Optional[Tuple[str, str]] = None

    def _dir(self, prefix: str) -> Path:
        path = open_dir(prefix)
        self.dirs.append(path)
        return path

    # -------------------------------------------------------------- set-up and tear-down
    def setup(self) -> None:
        venv = ensure_stack_venv()
        ensure_debian_packages("rabbitmq-server", "time", "resource-agents")
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
        self.noauth_conf = self._noauth_conf()

    def _noauth_conf(self) -> Path:
        """cinder.conf without the credentials of [keystone_authtoken]: the unauthenticated path."""
        assert self.stack is not None
        conf = configparser.ConfigParser(interpolation=None)
        conf.optionxform = str  # type: ignore[assignment,method-assign]
        conf.read(self.stack.cinder_conf)
        for option in ("username", "password", "project_name"):
            conf.remove_option("keystone_authtoken", option)
        path = self.scratch / "cinder-noauth.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # transport_url has a password
        with os.fdopen(fd, "w") as out:
            conf.write(out)
        return path

    def teardown(self) -> None:
        for resource in reversed(self.started):
            leader = resource.leader()
            try:
                resource.run("stop", STOP_TIMEOUT_S)
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

    def resource(self, name: str, instance: str, rsctmp: Path, **extra: str) -> Resource:
        assert self.stack is not None
        binary = "cinder-scheduler" if name == "cinder-schedule" else name
        params = {"binary": str(self.stack.cinder_bin(binary)), "config": str(self.stack.cinder_conf)}
        params.update(extra)
        return Resource(self.agents_dir / name, rsctmp, instance, params)

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
    def start(self, resource: Resource) -> Dict[str, Any]:
        assert self.stack is not None
        since = time.time()
        if resource.name == "cinder-api":
            url = self.stack.cinder_url
            probe: Callable[[], bool] = lambda: http_answers(url)  # noqa: E731
            step, what = 0.01, "the API first answers GET /"
        else:
            probe, step = self._heartbeat_since(resource.name, since), 0.05
            what = "every host of the service is up in os-services with a heartbeat newer than the start"
        self.started.append(resource)
        t0 = time.monotonic()
        with Poller(probe, step) as poller:
            run = resource.run("start", START_TIMEOUT_S)
            returned = time.monotonic()
        if run.rc != 0:
            raise RuntimeError(f"{resource.instance} start: rc {run.rc}: {run.stderr[-2000:]}")
        healthy = poller.at
        return {
            "start_s": round(returned - t0, 3),
            "healthy_after_s": None if healthy is None else round(healthy - t0, 3),
            "overhead_s": None if healthy is None else round(returned - healthy, 3),
            "healthy_means": what,
        }

    def stop(self, resource: Resource) -> Dict[str, Any]:
        leader = resource.leader()
        members = session_members(leader) if leader is not None else []

        def gone() -> bool:
            return all(proc_state(pid) is None for pid in members)

        t0 = time.monotonic()
        with Poller(gone, 0.002) as poller:
            run = resource.run("stop", STOP_TIMEOUT_S)
            returned = time.monotonic()
        if run.rc != 0:
            raise RuntimeError(f"{resource.instance} stop: rc {run.rc}: {run.stderr[-2000:]}")
        exited = poller.at
        return {
            "stop_s": round(returned - t0, 3),
            "processes": len(members),
            "tree_gone_after_s": None if exited is None else round(exited - t0, 3),
            "overhead_s": None if exited is None else round(returned - exited, 3),
        }

    def lifecycle(self, resource: Resource) -> None:
        """cycles x (start, stop), then a start that stays for the monitors."""
        starts, stops = [], []
        for _ in range(self.cycles):
            starts.append(self.start(resource))
            stops.append(self.stop(resource))
        starts.append(self.start(resource))
        self.results["lifecycle"][resource.name] = {"starts": starts, "stops": stops}
        LOG.info(
            "%s: start overhead %s s, stop overhead %s s",
            resource.name,
            [s["overhead_s"] for s in starts],
            [s["overhead_s"] for s in stops],
        )

    def final_stop(self, resource: Resource) -> None:
        self.results["lifecycle"][resource.name]["stops"].append(self.stop(resource))
        self.started.remove(resource)

    # -------------------------------------------------------------- monitors
    def shell(self, leader_resource: Resource) -> Tuple[List[str], Dict[str, str]]:
        """The 2013 agent's pid-only monitor, pointed at the same daemon's pid."""
        assert self.stack is not None
        leader = leader_resource.leader()
        pid_file = self.scratch / f"{leader_resource.instance}-2013.pid"
        pid_file.write_text(f"{leader}\n")
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "OCF_ROOT": "/usr/lib/ocf",
            "OCF_RESOURCE_INSTANCE": f"{leader_resource.instance}-2013",
            "HA_RSCTMP": str(self.scratch),
            "OCF_RESKEY_CRM_meta_timeout": str(int(MONITOR_TIMEOUT_S * 1000)),
            "OCF_RESKEY_CRM_meta_interval": str(int(INTERVAL_S * 1000)),
            "OCF_RESKEY_binary": str(self.stack.cinder_bin("cinder-api")),
            "OCF_RESKEY_config": str(self.stack.cinder_conf),
            "OCF_RESKEY_user": SERVICE_USER,
            "OCF_RESKEY_pid": str(pid_file),
        }
        return [str(SHELL_AGENT), "monitor"], env

    def monitor_paths(self, resource: Resource) -> None:
        noauth = Resource(
            resource.path,
            resource.rsctmp,
            resource.instance + "-noauth",
            {**resource.params, "config": str(self.noauth_conf), "pid": str(resource.pid_file())},
        )
        shell_argv, shell_env = self.shell(resource)
        out: Dict[str, Any] = {}
        for path, label in PATHS.items():
            target = noauth if path == "noauth" else resource
            token_file = target.state_file("token")
            before = self.token_requests()
            # One run not counted: it fills the cinder.conf cache (and the token cache).
            self._check(target.run("monitor"), target, path)
            ours: List[Run] = []
            theirs: List[Run] = []
            ours_rss: List[float] = []
            theirs_rss: List[float] = []
            for _ in range(self.runs):
                if path == "fetch":
                    token_file.unlink(missing_ok=True)
                ours.append(self._check(target.run("monitor"), target, path))
                theirs.append(run_measured(shell_argv, shell_env, MONITOR_TIMEOUT_S))
                if theirs[-1].rc != 0:
                    raise RuntimeError(f"2013 monitor: rc {theirs[-1].rc}: {theirs[-1].stderr[-500:]}")
                if path == "fetch":
                    token_file.unlink(missing_ok=True)
                argv, env = target.argv("monitor"), target.env("monitor", MONITOR_TIMEOUT_S)
                ours_rss.append(peak_rss_mib(argv, env, MONITOR_TIMEOUT_S + 10, self.scratch))
                theirs_rss.append(peak_rss_mib(shell_argv, shell_env, MONITOR_TIMEOUT_S + 10, self.scratch))
            requests = self.token_requests() - before
            wall = summary([r.wall for r in ours], 1000)
            shell_wall = summary([r.wall for r in theirs], 1000)
            warnings = sorted(
                {ln.split(": ", 2)[-1][:200] for r in ours for ln in r.stderr.splitlines() if "WARNING" in ln}
            )
            out[path] = {
                "label": label,
                "wall_ms": wall,
                "cpu_ms": summary([r.cpu for r in ours], 1000),
                "peak_rss_mib": summary(ours_rss),
                "shell_wall_ms": shell_wall,
                "shell_cpu_ms": summary([r.cpu for r in theirs], 1000),
                "shell_peak_rss_mib": summary(theirs_rss),
                "ratio_to_shell": round(wall["median"] / shell_wall["median"], 2),
                "keystone_token_requests": requests,
                "monitor_runs": 2 * self.runs + 1,
                "warnings": warnings,
            }
            LOG.info(
                "%s %s: wall %.1f ms (2013: %.1f ms, x%.2f), cpu %.1f ms, rss %.1f MiB, %d token requests",
                resource.name,
                path,
                wall["median"],
                shell_wall["median"],
                out[path]["ratio_to_shell"],
                out[path]["cpu_ms"]["median"],
                out[path]["peak_rss_mib"]["median"],
                requests,
            )
        self.results["monitor"][resource.name] = out

    @staticmethod
    def _check(run: Run, resource: Resource, path: str) -> Run:
        if run.rc != 0:
            raise RuntimeError(f"{resource.instance} monitor ({path}): rc {run.rc}: {run.stderr[-1500:]}")
        return run

    # -------------------------------------------------------------- Keystone's side
    def token_requests(self) -> int:
        """Token requests Keystone logged from anything but this harness (urllib)."""
        assert self.stack is not None
        try:
            lines = self.stack.keystone_access_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return 0
        return sum(1 for ln in lines if TOKEN_REQUEST in ln and "Python-urllib" not in ln)

    def tokens_per_hour(self, resource: Resource) -> None:
        """Monitors from an empty token cache, counted on Keystone's side."""
        monitors = self.args.token_monitors
        resource.state_file("token").unlink(missing_ok=True)
        before = self.token_requests()
        fetched_at = time.time()
        for _ in range(monitors):
            self._check(resource.run("monitor"), resource, "tokens")
        observed = self.token_requests() - before
        lifetime = self._token_lifetime(resource, fetched_at)
        per_hour_monitors = 3600.0 / INTERVAL_S
        renewals = 3600.0 / max(1.0, lifetime - RENEW_MARGIN_S)
        extra = max(0, observed - 1) * per_hour_monitors / max(1, monitors - 1)
        self.results["tokens"][resource.name] = {
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
            resource.name,
            observed,
            monitors,
            renewals + extra,
        )

    @staticmethod
    def _token_lifetime(resource: Resource, fetched_at: float) -> float:
        """From the cache the agent wrote (expires_at only: the token itself is not read)."""
        for line in resource.state_file("token").read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "expires_at":
                return float(value) - fetched_at
        raise RuntimeError("no expires_at in the token cache")

    # -------------------------------------------------------------- the whole run
    def run(self) -> None:
        self.setup()
        assert self.stack is not None
        api_tmp = self._dir("cinder-ocf-bench-rsc-")
        api = self.resource("cinder-api", "bench-cinder-api", api_tmp)
        self.lifecycle(api)
        self.monitor_paths(api)
        self.tokens_per_hour(api)
        for name in SERVICES:
            if self.args.agents and name not in self.args.agents:
                continue
            rsctmp = self._dir("cinder-ocf-bench-rsc-")
            resource = self.resource(name, f"bench-{name}", rsctmp)
            self.lifecycle(resource)
            self.monitor_paths(resource)
            self.tokens_per_hour(resource)
            self.final_stop(resource)
        self.final_stop(api)


# ------------------------------------------------------------------ reports


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


def targets(results: Dict[str, Any]) -> List[Tuple[str, bool, str]]:
    monitor = results["monitor"]
    out: List[Tuple[str, bool, str]] = []
    api = monitor.get("cinder-api", {}).get("cached")
    if api:
        ratio = api["ratio_to_shell"]
        out.append(
            (
                "cinder-api cached-token monitor: median wall <= 1.2x the 2013 pid-only monitor",
                ratio <= 1.2,
                f"x{ratio}",
            )
        )
        cpu = api["cpu_ms"]["median"]
        out.append(("cinder-api cached-token monitor: CPU < 15 ms", cpu < 15, f"{cpu} ms"))
        rss = api["peak_rss_mib"]["median"]
        out.append(("cinder-api cached-token monitor: peak RSS < 14 MiB", rss < 14, f"{rss} MiB"))
        for name, paths in monitor.items():
            if name != "cinder-api" and "cached" in paths:
                theirs = paths["cached"]["wall_ms"]["median"]
                out.append(
                    (
                        f"{name} cached-token monitor no slower than cinder-api's",
                        theirs <= api["wall_ms"]["median"] * 1.05,
                        f"{theirs} ms vs {api['wall_ms']['median']} ms",
                    )
                )
    for name, tokens in results["tokens"].items():
        # Every monitor ran within one token's lifetime: more than one request is a miss.  The
        # renewal margin makes it 1.09 per hour with one-hour tokens, one per token all the same.
        out.append(
            (
                f"{name}: at most one token request per token lifetime",
                tokens["observed_requests"] <= 1,
                f"{tokens['observed_requests']} in {tokens['monitors']} monitors; "
                f"{tokens['requests_per_hour']} per hour",
            )
        )
    for name, cycle in results["lifecycle"].items():
        starts = [s["overhead_s"] for s in cycle["starts"] if s["overhead_s"] is not None]
        stops = [s["overhead_s"] for s in cycle["stops"] if s["overhead_s"] is not None]
        if starts:
            out.append(
                (
                    f"{name}: start returns within 0.3 s of healthy",
                    max(starts) <= 0.3,
                    f"max {max(starts):.3f} s",
                )
            )
        if stops:
            out.append(
                (
                    f"{name}: stop returns within 0.3 s of the tree's exit",
                    max(stops) <= 0.3,
                    f"max {max(stops):.3f} s",
                )
            )
    return out


def _ms(s: Dict[str, float]) -> str:
    return f"{s['median']:.1f} / {s['p95']:.1f}"


def readme_table(results: Dict[str, Any]) -> str:
    lines = [
        f"Measured by `make bench` on {results['generated'][:10]} ({results['machine']['cpus']} cores, "
        f"one paired run; full figures and method in [benchmarks/results.md](benchmarks/results.md)).",
        "",
        "| agent | monitor, cached token: wall (x 2013 agent) | CPU | peak RSS | token requests/h "
        "at 10 s | start / stop overhead (max) |",
        "|---|---|---|---|---|---|",
    ]
    for name in AGENT_ORDER:
        paths = results["monitor"].get(name)
        if not paths:
            continue
        cached = paths["cached"]
        tokens = results["tokens"].get(name, {})
        cycle = results["lifecycle"].get(name, {})
        start = max((s["overhead_s"] or 0.0 for s in cycle.get("starts", [])), default=0.0)
        stop = max((s["overhead_s"] or 0.0 for s in cycle.get("stops", [])), default=0.0)
        lines.append(
            f"| {name} | {cached['wall_ms']['median']:.1f} ms (x{cached['ratio_to_shell']}) | "
            f"{cached['cpu_ms']['median']:.1f} ms | {cached['peak_rss_mib']['median']:.1f} MiB | "
            f"{tokens.get('requests_per_hour', '-')} | {start:.2f} s / {stop:.2f} s |"
        )
    lines += [
        "",
        "The 2013 shell agent's pid-only monitor, run alternately: "
        + "".join(
            f"{row['shell_wall_ms']['median']:.1f} ms, CPU {row['shell_cpu_ms']['median']:.1f} ms, "
            f"peak RSS {row['shell_peak_rss_mib']['median']:.1f} MiB (dash)"
            for row in [results["monitor"].get("cinder-api", {}).get("cached")]
            if row
        )
        + "; with credentials it asked Keystone for a token at every monitor (360/h).",
    ]
    return "\n".join(lines)


def results_md(results: Dict[str, Any]) -> str:
    m = results["machine"]
    out = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (benchmarks/run.py) on {results['generated']}: {m['cpus']} cores, "
        f"kernel {m['kernel']}, Python {m['python']}, resource-agents {m['resource-agents']}, load "
        f"average at the end {m['load_average_at_end']}.",
        "",
        "These figures come from one paired run on a shared machine: absolute times move with "
        "whatever else runs; the ratios, measured with our agent and the 2013 agent run "
        "alternately, matter more than the absolutes.",
        "",
        "## Targets",
        "",
        "| target | met | measured |",
        "|---|---|---|",
    ]
    for what, met, measured in targets(results):
        out.append(f"| {what} | {'yes' if met else '**no**'} | {measured} |")
    out += [
        "",
        f"## Monitor ({results['runs']} runs per path, median / p95)",
        "",
        "Every run of ours is followed by a run of the 2013 shell agent's pid-only cinder-api "
        "monitor (benchmarks/cinder-api-2013-monitor.sh) against the same daemon's pid; `x 2013` "
        "is the ratio of the medians.",
        "",
        "| agent | path | wall ms | CPU ms | peak RSS MiB | 2013 agent wall ms | x 2013 | token requests |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in AGENT_ORDER:
        for row in results["monitor"].get(name, {}).values():
            out.append(
                f"| {name} | {row['label']} | {_ms(row['wall_ms'])} | {_ms(row['cpu_ms'])} | "
                f"{_ms(row['peak_rss_mib'])} | {_ms(row['shell_wall_ms'])} | {row['ratio_to_shell']} | "
                f"{row['keystone_token_requests']} in {row['monitor_runs']} monitors |"
            )
    shell_rss = [
        row["shell_peak_rss_mib"]["median"] for p in results["monitor"].values() for row in p.values()
    ]
    if shell_rss:
        out += ["", f"The 2013 agent's peak RSS (GNU time): median {statistics.median(shell_rss):.1f} MiB."]
    warnings = {
        (n, p): r["warnings"] for n, ps in results["monitor"].items() for p, r in ps.items() if r["warnings"]
    }
    if warnings:
        out += [
            "",
            "Warnings the agents logged during these runs (expected for the unauthenticated path):",
            "",
        ]
        for (name, path), lines in warnings.items():
            out += [f"* {name}, {path}: " + "; ".join(f"`{w}`" for w in lines[:3])]
    out += [
        "",
        "## Keystone token requests",
        "",
        "| agent | requests seen by Keystone | token lifetime | per hour at a 10 s interval | per token "
        "lifetime | 2013 agent |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in results["tokens"].items():
        out.append(
            f"| {name} | {t['observed_requests']} in {t['monitors']} monitors from an empty cache | "
            f"{t['token_lifetime_s']} s | {t['requests_per_hour']} | {t['requests_per_token_lifetime']} | "
            f"{t['shell_2013_per_hour']:.0f} per hour (one per monitor) |"
        )
    out += [
        "",
        "## Start and stop",
        "",
        "Start overhead: from the moment the service is healthy (cinder-api: it first answers GET /; "
        "the RPC services: every host up in os-services with a heartbeat newer than the start, "
        "polled every 50 ms, with report_interval = 2 s) to the moment start returns.  Stop "
        "overhead: from the moment the last process of the daemon's tree exited (polled every "
        "2 ms) to the moment stop returns.",
        "",
        "| agent | start s | healthy after s | start overhead s | stop s | processes | stop overhead s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, cycle in results["lifecycle"].items():
        for index, start in enumerate(cycle["starts"]):
            stop = cycle["stops"][index] if index < len(cycle["stops"]) else None
            out.append(
                f"| {name} | {start['start_s']} | {start['healthy_after_s']} | {start['overhead_s']} | "
                + (
                    f"{stop['stop_s']} | {stop['processes']} | {stop['overhead_s']} |"
                    if stop
                    else "- | - | - |"
                )
            )
    cluster = results.get("cluster")
    out += ["", "## Cluster (tests/cluster, benchmarks/cluster-results.json)", ""]
    if cluster:
        out += [
            f"From {cluster.get('scenario', 'tests/cluster')}, {cluster.get('generated', '')}.",
            "",
            "| figure | seconds |",
            "|---|---|",
        ]
        for key, value in cluster.get("results", {}).items():
            if isinstance(value, dict):
                out.append(f"| {value.get('what', key)} | {value.get('seconds')} |")
    else:
        out.append("No benchmarks/cluster-results.json: run the cluster tests to get these figures.")
    out += [
        "",
        "## Method",
        "",
        "* The stack is lab/stack: RabbitMQ, Keystone (gunicorn, one worker) and cinder 29's "
        "services from the stack venv, on loopback; each agent starts its own service as the "
        "`cinder` user; the agents run from a temporary OCF directory written by `cinder-ocf "
        "install-agents`, bound to the interpreter that runs the bench (a venv made from Debian's "
        "/usr/bin/python3, compiled), with the environment Pacemaker gives a recurring monitor "
        "(interval 10 s).  Credentials come from cinder.conf's [keystone_authtoken].",
        "* Paths: *cached token*: the token cache of the resource is warm (the recurring "
        "monitor's case); *must fetch a token*: the token cache is deleted before each run; "
        "*no credentials*: a resource whose cinder.conf has no [keystone_authtoken] credentials "
        "(the same daemon, through the same pid file).  One unmeasured run first fills the "
        "cinder.conf cache.",
        "* Wall time: time.monotonic() around the process; CPU: user + system time of the "
        "process from wait4; peak RSS: GNU time's %M of a separate run of the same command "
        "(wait4's ru_maxrss of a child of this Python process would include this process' own "
        "size, which Linux carries across exec).",
        "* Token requests are counted on Keystone's side: lines `POST /v3/auth/tokens` in its "
        "gunicorn access log, leaving out the harness' own (urllib) requests.  Per hour: the "
        f"agents ran {results['token_monitors']} monitors back to back from an empty cache; a "
        "token is reused until "
        f"{RENEW_MARGIN_S:.0f} s before it expires, so at one monitor every 10 s Keystone sees "
        "3600 / (lifetime - margin) requests per hour, plus any request seen beyond the first "
        "(scaled to 360 monitors per hour).  Waiting an hour would show the same: the cache "
        "does not depend on how fast the monitors come.",
        "* Start: each agent is started and stopped "
        f"{results['cycles']} times, then started once more for the monitors; the first start "
        "has an empty HA_RSCTMP (no token, no cinder.conf cache).",
        "",
    ]
    return "\n".join(out)


def update_readme(table: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start not in text or end not in text:
        LOG.warning("README.md has no %s/%s markers: table not updated", start, end)
        return
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{table}\n{end}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="measured monitors per path and agent")
    parser.add_argument("--cycles", type=int, default=3, help="start/stop cycles per agent")
    parser.add_argument("--token-monitors", type=int, default=60, help="monitors for the token count")
    parser.add_argument("--agents", nargs="*", help="RPC agents to include (default: all)")
    parser.add_argument("--out", type=Path, default=HERE, help="where results.json/.md go")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        print("make bench needs root: the services run as the cinder user", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    began = time.monotonic()
    bench = Bench(args)
    try:
        bench.run()
    finally:
        bench.teardown()
    results = {
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "runs": args.runs,
        "cycles": args.cycles,
        "token_monitors": args.token_monitors,
        "interval_s": INTERVAL_S,
        "duration_s": round(time.monotonic() - began, 1),
        **bench.results,
    }
    cluster = HERE / "cluster-results.json"
    if cluster.exists():
        results["cluster"] = json.loads(cluster.read_text())
    results["targets"] = [{"target": t, "met": met, "measured": m} for t, met, m in targets(results)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text(results_md(results))
    if not args.no_readme:
        update_readme(readme_table(results))
    print(results_md(results))
    LOG.info("bench done in %.0f s", results["duration_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
