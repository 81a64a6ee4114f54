"""The lifecycle every cinder service shares: validate, start, stop, monitor a daemon.

Exports: DaemonAgent, daemon_parameters, STANDARD_ACTIONS.

A service agent subclasses DaemonAgent with its meta-data and its health checks; the process
handling (identity, whole-tree stop, failing fast in start) is the same for all of them.
"""

from __future__ import annotations

import os
import stat
import time

from cinder_ocf import process
from cinder_ocf.checks import PENDING, Deadline, verdict, waiting_for
from cinder_ocf.metadata import Action, Parameter, parse_params
from cinder_ocf.ocf import OcfError, OcfExit
from cinder_ocf.statefile import StateFileError, fingerprint, read_state, write_state

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from subprocess import Popen
    from typing import Dict, List, Optional, Tuple

    from cinder_ocf.checks import CheckResult
    from cinder_ocf.config import CinderConfig
    from cinder_ocf.metadata import AgentSpec
    from cinder_ocf.ocf import Environment, Logger


_CHECK_TIMEOUT_DESC = (
    "How long one health check request may take before the service counts as hung. It is also "
    "capped by the operation's own timeout, so the agent always answers before Pacemaker would "
    "kill it."
)


def daemon_parameters(binary: str, check_timeout_desc: str = _CHECK_TIMEOUT_DESC) -> List[Parameter]:
    return [
        Parameter(
            "binary", f"{binary} executable",
            f"The {binary} program: a name looked up in PATH, or an absolute path (for example "
            f"the bin directory of a virtualenv).",
            default=binary,
        ),
        Parameter(
            "config", "cinder.conf path",
            "The cinder configuration file. The daemon is started with --config-file pointing "
            "at it, and the agent reads the same file for the listen address, the Keystone "
            "credentials and the message broker.",
            default="/etc/cinder/cinder.conf",
        ),
        Parameter(
            "user", "User the daemon runs as",
            f"The system account {binary} runs as. It must exist and be able to read the "
            f"configuration file.",
            default="cinder",
        ),
        Parameter(
            "pid", "Pid file",
            "Where the agent records the daemon's identity (pid, start time, executable). It "
            "must be in a directory only root can write to.",
            default="${HA_RSCTMP}/${OCF_RESOURCE_INSTANCE}.pid",
        ),
        Parameter(
            "console_log", "Daemon output file",
            f"File that receives what {binary} writes to standard output and error (start-up "
            f"errors, tracebacks). Empty: /var/log/cinder/cinder-ocf-<instance>.console.log "
            f"when /var/log/cinder exists, else cinder-ocf-<instance>.console.log in HA_RSCTMP."
        ),
        Parameter(
            "additional_parameters", "Additional command-line arguments",
            f"Extra arguments for {binary}, split like a shell would split them (quotes "
            f"respected) but never run through a shell. --config-file and --config-dir given "
            f"here are read by the agent too.",
        ),
        Parameter(
            "check_timeout", "Seconds each health check may take", check_timeout_desc,
            type="integer", default="10", minimum=1, maximum=3600,
        ),
    ]  # fmt: skip


STANDARD_ACTIONS = (
    Action("start", 60),
    Action("stop", 60),
    Action("monitor", 30, interval=10, depth=0),
    Action("status", 20),
    Action("validate-all", 20),
    Action("meta-data", 5),
)

_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_POLL_S = 0.1
FORK_SETTLE_S = 0.3  # a helper goes from fork to exec in well under a millisecond


def find_executable(name: str, path: str) -> Optional[str]:
    if "/" in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    for directory in (path or _DEFAULT_PATH).split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def margin(timeout_s: float) -> float:
    """Time kept back from the operation timeout to answer with a reason instead of being
    killed: interpreter start-up, the last check's wait, writing the answer."""
    return max(0.5, min(2.0, timeout_s * 0.1))


class ProcessState:
    """What runs of the daemon: the leader we started, orphans of a dead leader, or nothing."""

    def __init__(
        self,
        recorded: Optional[process.ProcessIdentity],
        running: bool,
        stats: Optional[List[process.ProcStat]],
        note: str,
    ) -> None:
        self.recorded = recorded
        self.running = running  # the leader itself is alive and ours
        self._stats = stats  # None: read from /proc when first asked for
        self.note = note  # why it is not running, for the log

    @property
    def stats(self) -> List[process.ProcStat]:
        """Live processes of the leader's tree (leader included when running).

        Read on demand: it scans all of /proc, which a node running hundreds of processes
        would pay on every monitor of a running cinder-api for nothing."""
        if self._stats is None:
            self._stats = process.tree_stats(self.recorded) if self.recorded is not None else []
        return self._stats

    @property
    def members(self) -> List[int]:
        return [st.pid for st in self.stats]

    def forks(self) -> List[process.ProcStat]:
        """The leader's direct children that run its own executable: the processes it forked
        (oslo.service: one per cinder-volume backend).

        A helper the daemon runs execs another program (os-brick runs grep at import, drivers
        run sudo): not a fork.  Between its fork and its exec a helper looks like one for an
        instant, so a child younger than FORK_SETTLE_S does not count yet.
        """
        if self.recorded is None:
            return []
        leader = self.recorded
        return [
            st for st in self.stats
            if st.ppid == leader.pid
            and process.age_seconds(st.start_ticks) >= FORK_SETTLE_S
            and process.executable(st.pid) == leader.exe
        ]  # fmt: skip

    @property
    def orphaned(self) -> bool:
        return not self.running and bool(self.members)


class DaemonAgent:
    """start/stop/monitor/validate-all for one cinder daemon; subclasses add health checks."""

    spec: AgentSpec

    def __init__(self, env: Environment, log: Logger, strict: bool) -> None:
        self.env = env
        self.log = log
        self.strict = strict
        self.params = parse_params(self.spec, env, log, strict)
        self.name = self.spec.name
        self.binary = self.params.text("binary")
        self.config_path = self.params.text("config")
        self.user_name = self.params.text("user")
        self.pid_path = self.params.text("pid")
        timeout = env.timeout_s(self.spec.default_timeout(env.action))
        # Never negative: an absurdly short operation timeout leaves no time, not less than none.
        self.deadline = Deadline(max(0.0, timeout - margin(timeout)))
        self._arguments: Optional[List[str]] = None
        self.last_state: Optional[ProcessState] = None  # what process_state() found last
        self._inputs: Optional[str] = None
        self.validated_config: Optional[CinderConfig] = None  # what validate_all() read

    # ---------------------------------------------------------------- helpers for subclasses
    @property
    def arguments(self) -> List[str]:
        """additional_parameters split into arguments (shlex: quotes, never a shell)."""
        if self._arguments is None:
            text = self.params.text("additional_parameters")
            if not text.strip():
                self._arguments = []
            else:
                import shlex  # noqa: PLC0415

                try:
                    self._arguments = shlex.split(text)
                except ValueError as err:
                    raise OcfError(OcfExit.ERR_CONFIGURED, f"additional_parameters: {err}") from None
        return self._arguments

    def config_sources(self) -> Tuple[List[str], List[str]]:
        from cinder_ocf.confsources import config_sources  # noqa: PLC0415

        return config_sources(self.config_path, self.arguments)

    def load_config(self) -> CinderConfig:
        """cinder.conf as the daemon will read it; OcfError when it cannot be used."""
        from cinder_ocf.config import ConfigProblem, load_config  # noqa: PLC0415

        files, dirs = self.config_sources()
        try:
            return load_config(files, dirs)
        except ConfigProblem as err:
            raise OcfError(err.code, err.reason) from None

    def check_timeout(self) -> float:
        return self.deadline.cap(float(self.params.integer("check_timeout")))

    def state_path(self, suffix: str) -> str:
        """A per-resource state file in HA_RSCTMP (the token cache, the config cache)."""
        safe = "".join(c if c.isalnum() or c in "-_.:" else "_" for c in self.env.instance)
        return os.path.join(self.env.rsctmp, f"cinder-ocf-{safe}.{suffix}")

    def cache_paths(self) -> List[str]:
        """Files whose change invalidates what the agent cached (cinder.conf and friends)."""
        from cinder_ocf.confsources import watched_paths  # noqa: PLC0415

        return watched_paths(*self.config_sources())

    def inputs(self) -> str:
        """Fingerprint of everything the caches derive from: parameters and watched files."""
        if self._inputs is None:
            self._inputs = fingerprint(self.env.params, self.cache_paths())
        return self._inputs

    def config_facts(self) -> Dict[str, str]:
        """What derive_facts() takes from cinder.conf, cached per resource in HA_RSCTMP until a
        parameter or a config file changes: oslo.config costs a monitor ~80 ms."""
        cache = self.state_path("conf")
        inputs = self.inputs()
        try:
            cached = read_state(cache)
        except StateFileError:
            cached = {}
        if cached.get("inputs") == inputs and cached.get("agent") == self.name:
            return {k: v for k, v in cached.items() if k not in ("inputs", "agent")}
        facts = self.derive_facts(self.validated_config or self.load_config())
        try:
            write_state(cache, {"inputs": inputs, "agent": self.name, **facts})
        except OSError as err:
            self.log.warning(f"cannot cache cinder.conf facts in {cache}: {err}")
        return facts

    # ---------------------------------------------------------------- hooks
    def derive_facts(self, config: CinderConfig) -> Dict[str, str]:
        """The facts of cinder.conf the checks need, as strings (see config_facts).  Never a
        secret: they are cached in a file."""
        return {}

    def health(self, deadline: Deadline) -> List[CheckResult]:
        """The service's checks, cheapest first.  Runs while the daemon's process lives."""
        return []

    def validate_service(self) -> None:
        """Service-specific validation; raise OcfError, log warnings."""

    def before_spawn(self) -> None:
        """Refuse to start when the service is already provided by someone else."""

    def while_starting(self) -> None:
        """Work the checks will need, done while the daemon boots (a token, say), so that start
        returns as soon as the service is healthy.  Must not fail the start."""

    def daemon_argv(self, binary_path: str) -> List[str]:
        return [binary_path, "--config-file", self.config_path, *self.arguments]

    # ---------------------------------------------------------------- process state
    def process_state(self) -> ProcessState:
        self.last_state = state = self._read_process_state()
        return state

    def _read_process_state(self) -> ProcessState:
        try:
            recorded = process.read_pid_file(self.pid_path)
        except process.PidFileError as err:
            return ProcessState(None, False, [], f"{err}: ignored")
        if recorded is None:
            return ProcessState(None, False, [], f"no pid file {self.pid_path}")
        running = process.is_running(recorded)
        note = "" if running else f"process {recorded.pid} recorded in {self.pid_path} is gone"
        return ProcessState(recorded, running, None, note)

    # ---------------------------------------------------------------- actions
    def validate_all(self) -> OcfExit:
        self._binary_path()
        user = self._user()
        config = self.load_config()
        from cinder_ocf.config import readable_by  # noqa: PLC0415

        files, _ = self.config_sources()
        for path in files:
            why = readable_by(path, user.uid, user.groups)
            if why:
                raise OcfError(OcfExit.ERR_CONFIGURED, f"user {user.name} cannot read {path}: {why}")
        self._check_pid_directory()
        console_log = self.params.text("console_log")
        if console_log and not os.path.isabs(console_log):
            raise OcfError(OcfExit.ERR_CONFIGURED, f"console_log {console_log!r} is not an absolute path")
        self.validated_config = config
        self.validate_service()
        return OcfExit.SUCCESS

    def status(self) -> OcfExit:
        """The process alone, no health check (the 2013 agents' status action)."""
        state = self.process_state()
        if state.running:
            return OcfExit.SUCCESS
        if state.orphaned:
            raise OcfError(OcfExit.ERR_GENERIC, self.orphan_reason(state))
        # An exit reason for 7 too: crm_mon shows it next to a failed recurring monitor, and
        # "process 1234 recorded in ... is gone" or "pid file ... is owned by uid 65534"
        # tells the operator why the resource is not running.
        self.log.info(f"{self.name} is not running: {state.note}")
        self.log.exit_reason(f"{self.name} is not running: {state.note}")
        return OcfExit.NOT_RUNNING

    def monitor(self) -> OcfExit:
        code = self.status()
        if code != OcfExit.SUCCESS:
            return code
        results = self.health(self.deadline)
        code, reason, warnings = verdict(results)
        for warning in warnings:
            self.log.warning(warning)
        if code != OcfExit.SUCCESS:
            raise OcfError(code, reason)
        for result in results:
            if result.status == PENDING:
                self.log.info(f"{result.name}: {result.detail}")
        self.log.debug(f"{self.name} is healthy")
        return code

    def start(self) -> OcfExit:
        self.validate_all()
        state = self.process_state()
        child: Optional[Popen[bytes]] = None
        if state.running:
            assert state.recorded is not None
            self.log.info(f"{self.name} already runs (pid {state.recorded.pid}); waiting until healthy")
            leader = state.recorded
        else:
            if state.orphaned:
                self.log.warning(self.orphan_reason(state) + "; ending them before the start")
                self._end_tree(state)
            self.before_spawn()
            child, leader = self._spawn()
        self.while_starting()
        return self._wait_healthy(child, leader)

    def stop(self) -> OcfExit:
        state = self.process_state()
        if state.recorded is None:
            if state.note and os.path.lexists(self.pid_path):
                # Untrusted pid file: nothing it names is signalled.  The link or file itself
                # goes, so that the next start records a real identity.
                self.log.warning(f"{state.note}; removing it")
                try:
                    process.remove_pid_file(self.pid_path)
                except OSError as err:
                    # A directory, a read-only file system: nothing of ours runs, so stop
                    # still succeeds (a failed stop gets the node fenced); start will say why
                    # it cannot record the daemon there.
                    self.log.warning(f"cannot remove {self.pid_path}: {err.strerror}")
            self.log.info(f"{self.name} is already stopped")
            return OcfExit.SUCCESS
        if not state.members:
            process.remove_pid_file(self.pid_path)
            self.log.info(f"{self.name} is already stopped")
            return OcfExit.SUCCESS
        self._end_tree(state)
        process.remove_pid_file(self.pid_path)
        self.log.info(f"{self.name} stopped")
        return OcfExit.SUCCESS

    # ---------------------------------------------------------------- internals
    def _binary_path(self) -> str:
        found = find_executable(self.binary, os.environ.get("PATH", ""))
        if found is None:
            where = "" if "/" in self.binary else f" in PATH ({os.environ.get('PATH') or _DEFAULT_PATH})"
            raise OcfError(OcfExit.ERR_INSTALLED, f"{self.binary} not found or not executable{where}")
        return found

    def _user(self) -> process.DaemonUser:
        user = process.lookup_user(self.user_name)
        if user is None:
            raise OcfError(OcfExit.ERR_INSTALLED, f"user {self.user_name} does not exist")
        if os.geteuid() != 0 and user.uid != os.geteuid():
            raise OcfError(OcfExit.ERR_PERM, f"only root can run {self.name} as {user.name}")
        return user

    def _check_pid_directory(self) -> None:
        directory = os.path.dirname(self.pid_path) or "."
        if not os.path.isabs(self.pid_path):
            raise OcfError(OcfExit.ERR_CONFIGURED, f"pid {self.pid_path!r} is not an absolute path")
        try:
            info = os.lstat(directory)
        except FileNotFoundError:
            return  # created on start
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            raise OcfError(
                OcfExit.ERR_PERM, f"pid directory {directory} is writable by others (no sticky bit)"
            )

    def _console_log(self) -> str:
        configured = self.params.text("console_log")
        if configured:
            return configured
        if os.path.isdir("/var/log/cinder"):
            return f"/var/log/cinder/{os.path.basename(self.state_path('console.log'))}"
        return self.state_path("console.log")

    def _spawn(self) -> Tuple[Popen[bytes], process.ProcessIdentity]:
        argv = self.daemon_argv(self._binary_path())
        user = self._user()
        output = self._console_log()
        try:
            os.makedirs(os.path.dirname(output), mode=0o755, exist_ok=True)
        except OSError as err:  # HA_RSCTMP or the console_log directory is a file, say
            raise OcfError(
                OcfExit.ERR_PERM, f"cannot create the directory of {output}: {err.strerror}"
            ) from None
        self.log.info(f"starting {self.name} as {user.name}: {' '.join(argv)} (output: {output})")
        try:
            child = process.spawn(argv, user, output, dict(os.environ))
        except OSError as err:
            raise OcfError(OcfExit.ERR_INSTALLED, f"cannot execute {argv[0]}: {err.strerror}") from None
        leader = process.identity_of(child.pid)
        if leader is None:
            raise OcfError(OcfExit.ERR_GENERIC, self._death_reason(output, child.wait()))
        try:
            process.write_pid_file(self.pid_path, leader)
        except (OSError, process.PidFileError) as err:
            import signal  # noqa: PLC0415

            process.signal_processes([child.pid], leader.start_ticks, signal.SIGKILL)
            child.wait()
            raise OcfError(OcfExit.ERR_PERM, f"cannot write pid file {self.pid_path}: {err}") from None
        return child, leader

    def _wait_healthy(self, child: Optional[Popen[bytes]], leader: process.ProcessIdentity) -> OcfExit:
        last = "no check ran yet"
        while True:
            exit_status = child.poll() if child is not None else None
            if exit_status is not None or not process.is_running(leader):
                raise OcfError(OcfExit.ERR_GENERIC, self._death_reason(self._console_log(), exit_status))
            if self.deadline.remaining() < _POLL_S:
                # A check squeezed into what is left would only report its own lack of time.
                raise OcfError(
                    OcfExit.ERR_GENERIC,
                    f"{self.name} did not become healthy within {self.deadline.seconds:.1f} s: {last}",
                )
            results = self.health(self.deadline)
            code, reason, warnings = verdict(results)
            waiting = waiting_for(results)
            if code == OcfExit.SUCCESS and not waiting:
                for warning in warnings:
                    self.log.warning(warning)
                self.log.info(f"{self.name} started (pid {leader.pid})")
                return OcfExit.SUCCESS
            last = reason or waiting
            time.sleep(min(_POLL_S, self.deadline.remaining()))

    def _death_reason(self, output: str, exit_status: Optional[int]) -> str:
        how = "exited" if exit_status is None else _describe_exit(exit_status)
        return f"{self.name} {how} during start; {self.last_output(output)}"

    def last_output(self, output: str = "") -> str:
        """The daemon's last output lines, for an exit reason."""
        output = output or self._console_log()
        lines = process.tail(output, 3)
        said = " | ".join(line[-200:] for line in lines) if lines else "no output"
        return f"last output ({output}): {said}"

    def orphan_reason(self, state: ProcessState) -> str:
        assert state.recorded is not None
        pids = " ".join(str(p) for p in state.members[:10])
        return (
            f"{self.name} parent process {state.recorded.pid} is gone but "
            f"{len(state.members)} of its processes still run ({pids})"
        )

    def _end_tree(self, state: ProcessState) -> None:
        """SIGTERM to the whole tree, SIGKILL to what is left before the deadline."""
        import signal  # noqa: PLC0415 - start and stop only: its enums cost a monitor ~3 ms

        assert state.recorded is not None
        leader = state.recorded
        budget = self.deadline.remaining()
        term_deadline = time.monotonic() + budget - min(5.0, budget * 0.25)
        signalled: set = set()
        left = state.members
        while left and time.monotonic() < term_deadline:
            fresh = [pid for pid in left if pid not in signalled]
            termed = process.signal_processes(fresh, leader.start_ticks, signal.SIGTERM)
            # A stopped process (SIGSTOP, a debugger) acts on SIGTERM only once continued, as
            # systemd knows: without SIGCONT it would wait for the SIGKILL at the very end.
            process.signal_processes(termed, leader.start_ticks, signal.SIGCONT)
            signalled.update(termed)
            time.sleep(0.05)
            left = process.find_tree(leader)
        if left:
            self.log.warning(
                f"{self.name}: {len(left)} process(es) ignored SIGTERM for "
                f"{budget - min(5.0, budget * 0.25):.1f} s: sending SIGKILL to {left}"
            )
            process.signal_processes(left, leader.start_ticks, signal.SIGKILL)
            left = process.wait_gone(leader, self.deadline.end)
        if left:
            raise OcfError(
                OcfExit.ERR_GENERIC,
                f"{self.name}: processes {left} survived SIGKILL (stuck in the kernel?)",
            )


def _describe_exit(status: int) -> str:
    if status < 0:
        return f"was killed by {process.signal_name(-status)}"
    return f"exited with status {status}"
