"""The lifecycle every cinder service shares: validate, start, wait until healthy, stop, monitor.

Exports: Supervisor, margin.

The supervisor knows no service: it is given the agent's Service (its meta-data, checks,
validators and facts) and runs the OCF actions for it.  What the checks need arrives in the
Context it builds; the checks leave nothing behind on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import signal
import subprocess
from collections.abc import Iterator

from cinder_ocf import trusted
from cinder_ocf.agents.base import DEEP, TOKEN_PARAMETERS, Service
from cinder_ocf.checks import Status, run_checks, verdict, waiting_for
from cinder_ocf.checks.context import Clock, Context, Deadline, SystemClock
from cinder_ocf.checks.tokens import Tokens, resolve_credentials, validate_url
from cinder_ocf.log import Logger
from cinder_ocf.metadata import parse_params
from cinder_ocf.ocf import Environment, OcfError, OcfExit
from cinder_ocf.openstack import keystone
from cinder_ocf.openstack.conf import (
    CinderConfig,
    config_sources,
    default_sources,
    fingerprint,
    load_config,
    readable_by,
    watched_paths,
)
from cinder_ocf.openstack.facts import Facts, FactsCache
from cinder_ocf.supervisor import daemon, processes
from cinder_ocf.supervisor.processes import ProcessView
from cinder_ocf.supervisor.strays import Stray, config_set, find_strays

_POLL_S = 0.1


def _reap(child: subprocess.Popen[bytes] | None) -> int | None:
    """The exit status of a child that just died (None if it is not ours or not dead yet)."""
    if child is None:
        return None
    try:
        return child.wait(timeout=0.5)
    except subprocess.TimeoutExpired:
        return None


def margin(timeout_s: float) -> float:
    """Time kept back from the operation timeout to answer with a reason instead of being
    killed: interpreter start-up, the last check's overrun, writing the answer.  At least
    0.5 s more than dispatch's alarm keeps back (0.3 s), so that the action's own deadline,
    not the alarm, decides how a slow action ends."""
    return max(0.8, min(2.0, timeout_s * 0.1))


class Supervisor:
    """start/stop/monitor/validate-all for one resource of one service."""

    def __init__(
        self,
        service: Service,
        env: Environment,
        log: Logger,
        strict: bool,
        clock: Clock | None = None,
        spent: float = 0.0,
    ) -> None:
        """spent: seconds of the operation timeout already gone when the action began."""
        self.service = service
        self.spec = service.spec
        self.name = service.spec.name
        self.env = env
        self.log = log
        self.clock = clock or SystemClock()
        self.params = parse_params(self.spec, env, log, strict)
        self.binary = self.params.text("binary")
        self.config_path = self.params.text("config")
        self.user_name = self.params.text("user")
        self.pid_path = self.params.text("pid")
        timeout = env.timeout_s(self.spec.default_timeout(env.action))
        # Never negative: an absurdly short operation timeout leaves no time, not less than none.
        self.deadline = Deadline(self.clock, max(0.0, timeout - margin(timeout) - spent))
        self._arguments: list[str] | None = None
        self._inputs: str | None = None
        self._watched: list[str] | None = None
        self._config: CinderConfig | None = None
        self.ctx = self._context()

    # ---------------------------------------------------------------- what the checks get
    def _context(self) -> Context:
        tokens = Tokens(
            lambda: keystone.TokenCache(self.state_path("token"), self.token_inputs),
            self.state_path("nocreds"),
            self._credentials,
            self._check_timeout,
            self.log,
        )
        return Context(
            service=self.service,
            env=self.env,
            params=self.params,
            log=self.log,
            clock=self.clock,
            deadline=self.deadline,
            processes=ProcessView(self.pid_path, self.clock),
            tokens=tokens,
            load_facts=self.facts,
            load_config=self.config,
            last_output=self.last_output,
            transport_url=self.transport_url,
        )

    def _check_timeout(self) -> float:
        return self.ctx.check_timeout()

    def _credentials(self) -> keystone.Credentials:
        creds = resolve_credentials(
            self.spec, self.params, self.config, self.service.wants_endpoint, self.env.environ
        )
        for secret in creds.secrets:
            self.log.add_secret(secret)
        return creds

    def state_path(self, suffix: str) -> str:
        return trusted.state_path(self.env.rsctmp, self.env.instance, suffix)

    @property
    def arguments(self) -> list[str]:
        """additional_parameters split into arguments (shlex: quotes, never a shell)."""
        if self._arguments is None:
            text = self.params.text("additional_parameters")
            try:
                self._arguments = shlex.split(text) if text.strip() else []
            except ValueError as err:
                raise OcfError(OcfExit.ERR_CONFIGURED, f"additional_parameters: {err}") from None
        return self._arguments

    def config_sources(self) -> tuple[list[str], list[str]]:
        return config_sources(self.config_path, self.arguments)

    def config(self) -> CinderConfig:
        """cinder.conf as the daemon will read it; OcfError when it cannot be used."""
        if self._config is None:
            self._config = load_config(*self.config_sources())
        return self._config

    def watched(self) -> list[str]:
        """The files the caches derive from: cinder.conf and its includes, clouds.yaml."""
        if self._watched is None:
            paths = watched_paths(*self.config_sources())
            if self.params.text("os_cloud"):
                paths += keystone.clouds_yaml_paths(self.env.environ)
            self._watched = paths
        return self._watched

    @property
    def inputs(self) -> str:
        """Fingerprint of everything the caches derive from: parameters and watched files (a
        parameter changed by reload-agent invalidates them at the next monitor)."""
        if self._inputs is None:
            self._inputs = fingerprint(self.env.params, self.watched())
        return self._inputs

    @property
    def token_inputs(self) -> str:
        """The fingerprint of what the token derives from: the credentials' parameters only."""
        params = {key: value for key, value in self.env.params.items() if key in TOKEN_PARAMETERS}
        return fingerprint(params, self.watched())

    def transport_url(self) -> str:
        """cinder.conf's transport_url, kept 0600 in HA_RSCTMP under the inputs' fingerprint so
        that a monitor need not parse cinder.conf (not among the facts: it holds a password)."""
        path = self.state_path("broker")
        record = trusted.read_json(path) or {}
        url = record.get("url")
        if record.get("inputs") == self.inputs and isinstance(url, str):
            return url
        url = self.config().transport_url
        try:
            trusted.write_json(path, {"inputs": self.inputs, "url": url})
        except OSError as err:
            self.log.warning(f"cannot cache transport_url in {path}: {err}")
        return url

    def facts(self) -> Facts:
        cache = FactsCache(self.state_path("conf"), self.name, self.inputs)
        facts = cache.load()
        if facts is not None:
            return facts
        facts = self.service.derive_facts(self.ctx, self.config())
        try:
            cache.store(facts)
        except OSError as err:
            self.log.warning(f"cannot cache cinder.conf facts in {cache.path}: {err}")
        return facts

    # ---------------------------------------------------------------- actions
    def validate_all(self) -> OcfExit:
        """OCF_CHECK_LEVEL=0 set explicitly: the parameters alone (a tool may ask on a node
        without cinder); unset or 10: this node too (binary, user, cinder.conf, directories)."""
        self._validate_parameters()
        if self.env.check_level == 0:
            return OcfExit.SUCCESS
        self._binary_path()
        user = self._user()
        config = self.config()
        for path in self.config_sources()[0]:
            why = readable_by(path, user.uid, user.groups)
            if why:
                raise OcfError(OcfExit.ERR_CONFIGURED, f"user {user.name} cannot read {path}: {why}")
        self._check_pid_directory()
        for validator in (*self.service.validators, *self.service.check_validators):
            validator(self.ctx, config)
        return OcfExit.SUCCESS

    def reload_agent(self) -> OcfExit:
        """OCF 1.1: Pacemaker changed reloadable parameters only, the ones that configure the
        checks.  They were parsed strictly (a bad value answers 6, as start would) and their
        validators run; no process is touched.  The caches are keyed by what they derive from,
        so the next monitor rebuilds what the change invalidated."""
        self._validate_parameters()
        config = self.config()
        for validator in self.service.check_validators:
            validator(self.ctx, config)
        names = ", ".join(p.name for p in self.spec.parameters if p.reloadable and self.params.given(p.name))
        self.log.info(
            f"reload-agent: the next monitor uses the reloadable parameters as now set "
            f"({names or 'all at their defaults'}); no process was touched"
        )
        return OcfExit.SUCCESS

    def status(self) -> OcfExit:
        """The process alone, no health check (the 2013 agents' status action).  A copy of the
        daemon this resource did not start counts as this resource, failed: never 7 for it,
        or Pacemaker would start a second one."""
        view = self.ctx.processes
        # While a start or stop of this resource runs, the daemon it is spawning (not yet in the
        # pid file) or ending is its own, not a copy.
        others = self.strays() if not self._busy() else []
        if view.running:
            if others:
                raise OcfError(
                    OcfExit.ERR_GENERIC,
                    f"{self.stray_reason(others)}, beside the one this resource started (pid "
                    f"{view.leader.pid}): two would serve the same queues",
                )
            return OcfExit.SUCCESS
        if view.orphaned:
            raise OcfError(OcfExit.ERR_GENERIC, self.orphan_reason())
        if others:
            raise OcfError(OcfExit.ERR_GENERIC, f"{self.stray_reason(others)}; stop ends it")
        # An exit reason for 7 too: crm_mon shows it next to a failed recurring monitor, and
        # "process 1234 recorded in ... is gone" or "pid file ... is owned by uid 65534"
        # tells the operator why the resource is not running.
        self.log.info(f"{self.name} is not running: {view.note}")
        self.log.exit_reason(f"{self.name} is not running: {view.note}")
        return OcfExit.NOT_RUNNING

    def _busy(self) -> bool:
        """A start or stop of this resource holds its lock right now."""
        try:
            fd = os.open(self.state_path("lock"), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return False  # no lock file: no start or stop ever ran here, or it cannot be known
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # releases the shared lock at once

    def strays(self) -> list[Stray]:
        """Copies of this resource's daemon that its pid file does not name."""
        found = daemon.find_executable(self.binary, self.env.environ.get("PATH", ""))
        if found is None:
            return []  # nothing can run a binary that is not there
        try:
            files, dirs = self.config_sources()
        except OcfError:
            return []  # additional_parameters unusable: validate-all says so
        sources = config_set(files, dirs, os.getcwd())
        recorded = self.ctx.processes.recorded
        return find_strays(os.path.realpath(found), sources, recorded, default_sources)

    def stray_reason(self, found: list[Stray]) -> str:
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        return (
            f"{self.name} runs outside Pacemaker with this resource's binary and configuration: "
            f"{self._describe(first)}{more}"
        )

    def _describe(self, stray: Stray) -> str:
        return stray.describe(max(0.0, self.clock.time() - processes.started_at(stray.identity)))

    def _end_strays(self, action: str) -> None:
        """End every copy this resource did not start, tree and all; fail if one keeps coming
        back (a systemd unit with Restart=always) until the deadline."""
        found = self.strays()
        while found:
            for stray in found:
                self.log.warning(
                    f"{action}: ending {self.name} started outside Pacemaker: {self._describe(stray)}"
                )
                self._end_tree(stray.identity, [proc.pid for proc in processes.tree(stray.identity)])
            found = self.strays()
            if found and self.deadline.remaining() < _POLL_S:
                raise OcfError(
                    OcfExit.ERR_GENERIC, f"{self.stray_reason(found)}; it came back after being ended"
                )

    def monitor(self) -> OcfExit:
        """0 healthy, 1 failed; a dependency's outage is 0 with a warning, or DEGRADED (190)
        with the warning as exit reason to an OCF 1.1 manager's recurring monitor.  With
        OCF_CHECK_LEVEL 20 the deep checks follow checks that found nothing amiss."""
        code = self.status()
        if code != OcfExit.SUCCESS:
            return code
        results = run_checks(self.ctx, self.service.checks)
        if (self.env.check_level or 0) >= DEEP and self.service.deep_checks:
            if all(r.status in (Status.OK, Status.SKIPPED) for r in results):
                results += run_checks(self.ctx, self.service.deep_checks)
            else:
                self.log.info("the depth-20 checks wait until the others find nothing amiss")
        code, reason, warnings = verdict(results)
        if code == OcfExit.SUCCESS and warnings and self.env.reports_degraded:
            raise OcfError(OcfExit.DEGRADED, "; ".join(warnings))
        for warning in warnings:
            self.log.warning(warning)
        if code != OcfExit.SUCCESS:
            raise OcfError(code, reason)
        for result in results:
            if result.status is Status.PENDING:
                self.log.info(f"{result.name}: {result.detail}")
        self.log.debug(f"{self.name} is healthy")
        return code

    def start(self) -> OcfExit:
        with self._exclusive("start"):
            return self._start()

    def stop(self) -> OcfExit:
        with self._exclusive("stop"):
            return self._stop()

    @contextlib.contextmanager
    def _exclusive(self, action: str) -> Iterator[None]:
        """One start or stop of this resource at a time on this node: two starts at once (an
        operator's debug-start beside Pacemaker) would each find no pid file and spawn a
        daemon.  Monitors take no lock: they only read, and a pid file is replaced whole."""
        path = self.state_path("lock")
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
        except OSError as err:
            # No HA_RSCTMP to lock in: stop must still work, and start says why it cannot.
            self.log.warning(f"cannot lock {path} ({err.strerror}): {action} runs without the lock")
            yield
            return
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if self.deadline.remaining() < _POLL_S:
                        raise OcfError(
                            OcfExit.ERR_GENERIC,
                            f"another start or stop of this resource held {path} for the whole "
                            f"{self.deadline.seconds:.1f} s of this {action}",
                        ) from None
                    self.clock.sleep(_POLL_S)
            self.ctx.processes.refresh()  # what the other action left
            yield
        finally:
            os.close(fd)

    def _start(self) -> OcfExit:
        if self.deadline.remaining() < _POLL_S:
            # Decided here, before anything is spawned: a daemon started without the time to
            # see it healthy would only be left for the stop that follows.
            raise OcfError(
                OcfExit.ERR_GENERIC,
                f"{self.name} did not become healthy within {self.deadline.seconds:.1f} s: the "
                f"operation timeout leaves no time to start it",
            )
        self.validate_all()
        view = self.ctx.processes
        child: subprocess.Popen[bytes] | None = None
        if view.running:
            self.log.info(f"{self.name} already runs (pid {view.leader.pid}); waiting until healthy")
            leader = view.leader
        else:
            if view.orphaned:
                self.log.warning(self.orphan_reason() + "; ending them before the start")
                self._end_tree(view.leader, view.member_pids)
            self._end_strays("start")
            if self.service.before_spawn is not None:
                self.service.before_spawn(self.ctx)
            child, leader = self._spawn()
        if self.service.uses_token:
            self.ctx.tokens.prefetch()
        return self._wait_healthy(child, leader)

    def _stop(self) -> OcfExit:
        view = self.ctx.processes
        if view.recorded is None:
            if view.note and os.path.lexists(self.pid_path):
                # Untrusted pid file: nothing it names is signalled.  The link or file itself
                # goes, so that the next start records a real identity.
                self.log.warning(f"{view.note}; removing it")
                try:
                    trusted.remove(self.pid_path)
                except OSError as err:
                    # A directory, a read-only file system: nothing of ours runs, so stop
                    # still succeeds (a failed stop gets the node fenced); start will say why
                    # it cannot record the daemon there.
                    self.log.warning(f"cannot remove {self.pid_path}: {err.strerror}")
            what = "already stopped"
        elif not view.members:
            trusted.remove(self.pid_path)
            what = "already stopped"
        else:
            self._end_tree(view.leader, view.member_pids)
            trusted.remove(self.pid_path)
            what = "stopped"
        # Stopped means no copy of it runs here either, or Pacemaker starts a second elsewhere.
        self._end_strays("stop")
        self.log.info(f"{self.name} {what}")
        return OcfExit.SUCCESS

    # ---------------------------------------------------------------- internals
    def _binary_path(self) -> str:
        path = self.env.environ.get("PATH", "")
        found = daemon.find_executable(self.binary, path)
        if found is None:
            where = "" if "/" in self.binary else f" in PATH ({path or daemon.DEFAULT_PATH})"
            raise OcfError(OcfExit.ERR_INSTALLED, f"{self.binary} not found or not executable{where}")
        return found

    def _user(self) -> daemon.DaemonUser:
        user = daemon.lookup_user(self.user_name)
        if user is None:
            raise OcfError(OcfExit.ERR_INSTALLED, f"user {self.user_name} does not exist")
        if os.geteuid() != 0 and user.uid != os.geteuid():
            raise OcfError(OcfExit.ERR_PERM, f"only root can run {self.name} as {user.name}")
        return user

    def _validate_parameters(self) -> None:
        """What the parameters say by themselves (their values were parsed): validate-all's and
        reload-agent's one check of them."""
        self.arguments  # noqa: B018 - raises OcfError when additional_parameters cannot be split
        for name in ("pid", "console_log"):
            path = self.params.text(name)
            if path and not os.path.isabs(path):
                raise OcfError(OcfExit.ERR_CONFIGURED, f"{name} {path!r} is not an absolute path")
        for name in ("url", "os_auth_url"):
            if self.spec.declares(name):
                validate_url(self.ctx, name)

    def _check_pid_directory(self) -> None:
        directory = os.path.dirname(self.pid_path) or "."
        if not os.path.isdir(directory):
            return  # created on start, or start says why it cannot be
        try:
            trusted.check_directory(directory)
        except PermissionError as err:
            raise OcfError(OcfExit.ERR_PERM, f"pid directory {err}") from None

    def console_log(self) -> str:
        configured = self.params.text("console_log")
        if configured:
            return configured
        if os.path.isdir("/var/log/cinder"):
            return f"/var/log/cinder/{os.path.basename(self.state_path('console.log'))}"
        return self.state_path("console.log")

    def daemon_argv(self, binary_path: str) -> list[str]:
        return [binary_path, "--config-file", self.config_path, *self.arguments]

    def _spawn(self) -> tuple[subprocess.Popen[bytes], processes.ProcessIdentity]:
        argv = self.daemon_argv(self._binary_path())
        user = self._user()
        output = self.console_log()
        try:
            os.makedirs(os.path.dirname(output), mode=0o755, exist_ok=True)
        except OSError as err:  # HA_RSCTMP or the console_log directory is a file, say
            raise OcfError(
                OcfExit.ERR_PERM, f"cannot create the directory of {output}: {err.strerror}"
            ) from None
        try:
            output_fd = daemon.open_output(output)
        except OSError as err:  # a directory, a dangling symlink: the binary is not to blame
            raise OcfError(OcfExit.ERR_PERM, f"cannot open console_log {output}: {err.strerror}") from None
        self.log.info(f"starting {self.name} as {user.name}: {' '.join(argv)} (output: {output})")
        try:
            child = daemon.spawn(argv, user, output_fd, self.env.environ)
        except PermissionError as err:
            raise OcfError(OcfExit.ERR_PERM, f"cannot execute {argv[0]}: {err.strerror}") from None
        except OSError as err:
            raise OcfError(OcfExit.ERR_INSTALLED, f"cannot execute {argv[0]}: {err.strerror}") from None
        finally:
            os.close(output_fd)
        leader = processes.identity_of(child.pid)
        if leader is None:
            raise OcfError(OcfExit.ERR_GENERIC, self._death_reason(output, child.wait()))
        try:
            processes.write_pid_file(self.pid_path, leader)
        except OSError as err:
            processes.signal_tree([child.pid], leader, signal.SIGKILL)
            child.wait()
            raise OcfError(OcfExit.ERR_PERM, f"cannot write pid file {self.pid_path}: {err}") from None
        self.ctx.processes.refresh()
        return child, leader

    def _wait_healthy(
        self, child: subprocess.Popen[bytes] | None, leader: processes.ProcessIdentity
    ) -> OcfExit:
        last = "no check ran yet"
        while True:
            exit_status = child.poll() if child is not None else None
            if exit_status is None and not processes.is_running(leader):
                exit_status = _reap(child)
            if exit_status is not None or not processes.is_running(leader):
                raise OcfError(OcfExit.ERR_GENERIC, self._death_reason(self.console_log(), exit_status))
            if self.deadline.remaining() < _POLL_S:
                # A check squeezed into what is left would only report its own lack of time.
                raise OcfError(
                    OcfExit.ERR_GENERIC,
                    f"{self.name} did not become healthy within {self.deadline.seconds:.1f} s: {last}",
                )
            self.ctx.processes.refresh()
            results = run_checks(self.ctx, self.service.checks)
            code, reason, warnings = verdict(results)
            waiting = waiting_for(results)
            if code == OcfExit.SUCCESS and not waiting:
                for warning in warnings:
                    self.log.warning(warning)
                self.log.info(f"{self.name} started (pid {leader.pid})")
                return OcfExit.SUCCESS
            if code != OcfExit.SUCCESS and self.service.give_up is not None:
                self.service.give_up(self.ctx, reason)
            last = reason or waiting
            self.clock.sleep(min(_POLL_S, self.deadline.remaining()))

    def _death_reason(self, output: str, exit_status: int | None) -> str:
        return f"{self.name} {daemon.describe_exit(exit_status)} during start; {self.last_output(output)}"

    def last_output(self, output: str = "") -> str:
        """The daemon's last output lines, for an exit reason."""
        output = output or self.console_log()
        lines = daemon.tail(output, 3)
        said = " | ".join(line[-200:] for line in lines) if lines else "no output"
        return f"last output ({output}): {said}"

    def orphan_reason(self) -> str:
        view = self.ctx.processes
        pids = " ".join(str(p) for p in view.member_pids[:10])
        return (
            f"{self.name} parent process {view.leader.pid} is gone but "
            f"{len(view.member_pids)} of its processes still run ({pids})"
        )

    def _end_tree(self, leader: processes.ProcessIdentity, members: list[int]) -> None:
        """SIGTERM to the whole tree, SIGKILL to what is left before the deadline."""
        budget = self.deadline.remaining()
        grace = budget - min(5.0, budget * 0.25)
        term_deadline = self.clock.monotonic() + grace
        signalled: set[int] = set()
        left = members
        while left and self.clock.monotonic() < term_deadline:
            fresh = [pid for pid in left if pid not in signalled]
            termed = processes.signal_tree(fresh, leader, signal.SIGTERM)
            # A stopped process (SIGSTOP, a debugger) acts on SIGTERM only once continued, as
            # systemd knows: without SIGCONT it would wait for the SIGKILL at the very end.
            processes.signal_tree(termed, leader, signal.SIGCONT)
            signalled.update(termed)
            left = processes.wait_gone(leader, min(term_deadline, self.clock.monotonic() + 0.05))
        if left:
            self.log.warning(
                f"{self.name}: {len(left)} process(es) ignored SIGTERM for {grace:.1f} s: "
                f"sending SIGKILL to {left}"
            )
            processes.signal_tree(left, leader, signal.SIGKILL)
            left = processes.wait_gone(leader, self.deadline.end)
        if left:
            raise OcfError(
                OcfExit.ERR_GENERIC,
                f"{self.name}: processes {left} survived SIGKILL (stuck in the kernel?)",
            )
