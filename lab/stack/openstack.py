"""Real OpenStack services for the lab: RabbitMQ, Keystone and a Cinder config.

:class:`OpenStack` runs, all under one root directory and listening on one address:

* a private RabbitMQ (Debian's rabbitmq-server, called directly, own mnesia/log dirs,
  AMQP on ``host:5672``, Erlang distribution on ``127.0.0.1:25672``, epmd on 127.0.0.1),
* a private PostgreSQL (Debian's, on a Unix socket only: lab/stack/database.py) holding the
  ``keystone`` and ``cinder`` databases,
* Keystone (gunicorn from the stack venv, fernet, ``host:5000``) with a
  ``service`` project, a ``cinder`` user (roles admin + service) and volumev3 endpoints,
* a ``cinder.conf`` (fake driver, two backends, ``host = cinder-cluster``) and a synced
  database.  The Cinder daemons themselves are started by the code under test.

Every process it starts is recorded by PID (and start time) and stopped by PID.
No secret is ever put on a command line.  Processes are read through psutil (lab.host).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import psutil

from lab.host import children, pid_alive

from .database import Postgres
from .etcd import Etcd
from .install import ensure_service_user

LOG = logging.getLogger(__name__)

KEYSTONE_PORT = 5000
CINDER_API_PORT = 8776
AMQP_PORT = 5672
ERLANG_DIST_PORT = 25672
EPMD_PORT = 4369
REGION = "RegionOne"
CINDER_HOST = "cinder-cluster"  # [DEFAULT] host: every node registers under this name
KEYSTONE_SERVICE_USER = "cinder"  # the Keystone account of the Cinder services
RABBIT_USER = "openstack"
FAKE_DRIVER = "cinder.tests.fake_driver.FakeLoggingVolumeDriver"
# Its sibling that declares SUPPORTS_ACTIVE_ACTIVE: cinder's own, for a cinder cluster's tests.
FAKE_HA_DRIVER = "cinder.tests.fake_driver.FakeHAReplicatedLoggingVolumeDriver"
POSIX_BACKUP_DRIVER = "cinder.backup.drivers.posix.PosixBackupDriver"
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
RABBITMQCTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# gunicorn's default access log format plus the request time in ms (%(M)s) at the end.
KEYSTONE_ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)s'

KEYSTONE_WSGI = '''\
"""gunicorn entry point for Keystone, written by the cinder-ocf test harness.

keystone.server.configure() parses sys.argv[1:] with oslo.config: under gunicorn that is
gunicorn's own command line ("unrecognized arguments: --bind ..."), and every worker
exits 2.  Hide it before importing the application; the config comes from
$OS_KEYSTONE_CONFIG_DIR.
"""
import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
'''

OptionValue = Union[str, int, float, bool, Path, Sequence[str], None]

# Run by the agents' Python (psutil is the agents' dependency) in a network namespace: the pids
# listening on TCP port argv[1] there.
_LISTENERS = """
import sys, psutil
port = int(sys.argv[1])
print(*sorted({c.pid for c in psutil.net_connections("tcp")
               if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid}))
"""


# --------------------------------------------------------------------------------------
# processes


def start_ticks(pid: int) -> int:
    """When pid started, in clock ticks after boot: psutil's create_time adds the kernel's boot
    time, which moves by a whole second now and then, so the same process would look like another."""
    while True:
        boot = psutil.boot_time()
        created = psutil.Process(pid).create_time()
        if psutil.boot_time() == boot:
            return round((created - boot) * os.sysconf("SC_CLK_TCK"))


@dataclass
class Process:
    """A process identified by PID *and* start time, so a reused PID is never signalled."""

    name: str
    pid: int
    start_ticks: int
    popen: Optional[subprocess.Popen] = field(default=None, repr=False)

    @classmethod
    def attach(
        cls,
        name: str,
        pid: int,
        popen: Optional[subprocess.Popen] = None,
    ) -> Process:
        """Record the running process *pid* (raises ProcessLookupError if it is gone)."""
        try:
            created = start_ticks(pid)
        except psutil.Error:
            raise ProcessLookupError(f"{name}: no process {pid}") from None
        return cls(name, pid, created, popen)

    def alive(self) -> bool:
        """Running (not a zombie) and still the same process."""
        if self.popen is not None and self.popen.poll() is not None:
            return False  # our child: exited and now reaped
        try:
            same = start_ticks(self.pid) == self.start_ticks
        except psutil.Error:
            return False
        return same and pid_alive(self.pid)

    def send_signal(self, signum: int) -> None:
        """Send *signum* if the process is still this one."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def wait_gone(self, timeout: float) -> bool:
        """Wait up to *timeout* s for the process to end; True if it did."""
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self, timeout: float = 20.0, signum: int = signal.SIGTERM) -> None:
        """*signum* (SIGTERM), SIGKILL after *timeout* s, then SIGKILL leftover descendants.

        Descendants (gunicorn/oslo.service workers, erl_child_setup, ...) are collected
        before the signal and are killed by PID if they outlive the parent.
        """
        if not self.alive():
            return
        kids = []
        for pid in children(self.pid, recursive=True):
            with contextlib.suppress(ProcessLookupError):
                kids.append(Process.attach(f"{self.name} child", pid))
        t0 = time.monotonic()
        self.send_signal(signum)
        if not self.wait_gone(timeout):
            LOG.warning(
                "%s (pid %d) still running %.0f s after signal %d: SIGKILL",
                self.name,
                self.pid,
                timeout,
                signum,
            )
            self.send_signal(signal.SIGKILL)
            if not self.wait_gone(10.0):
                raise RuntimeError(f"{self.name} (pid {self.pid}) survives SIGKILL")
        for kid in kids:
            if kid.alive():
                LOG.info("%s: SIGKILL leftover child %d", self.name, kid.pid)
                kid.send_signal(signal.SIGKILL)
                kid.wait_gone(10.0)
        LOG.info("%s (pid %d) stopped in %.1f s", self.name, self.pid, time.monotonic() - t0)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path} does not exist)"


# --------------------------------------------------------------------------------------
# HTTP (urllib, proxies disabled: everything here is local)

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class HttpResponse:
    """Status, headers and body of an HTTP response (any status, 4xx/5xx included)."""

    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body.decode("utf-8"))


def http_request(
    method: str,
    url: str,
    body: Any = None,
    headers: Optional[Mapping[str, str]] = None,
    timeout: float = 10.0,
) -> HttpResponse:
    """One HTTP request without proxies; *body* (if not None) is sent as JSON.

    Returns the response whatever its status; connection failures raise
    ``urllib.error.URLError`` (e.g. reason ``ConnectionRefusedError``).
    """
    hdrs = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    request = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return HttpResponse(response.status, response.headers, response.read())
    except urllib.error.HTTPError as err:
        with err:
            return HttpResponse(err.code, err.headers, err.read())


def tcp_port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """Keystone v3 password credentials (project scoped)."""

    auth_url: str
    username: str
    password: str = field(repr=False)
    project_name: str
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"

    def auth_body(self) -> Dict[str, Any]:
        """The JSON body of ``POST /v3/auth/tokens`` for these credentials."""
        return {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self.username,
                            "domain": {"name": self.user_domain_name},
                            "password": self.password,
                        }
                    },
                },
                "scope": {
                    "project": {
                        "name": self.project_name,
                        "domain": {"name": self.project_domain_name},
                    }
                },
            }
        }

    def env(self) -> Dict[str, str]:
        """OS_* environment variables for the OpenStack clients."""
        return {
            "OS_AUTH_URL": self.auth_url,
            "OS_USERNAME": self.username,
            "OS_PASSWORD": self.password,
            "OS_PROJECT_NAME": self.project_name,
            "OS_USER_DOMAIN_NAME": self.user_domain_name,
            "OS_PROJECT_DOMAIN_NAME": self.project_domain_name,
            "OS_IDENTITY_API_VERSION": "3",
            "OS_REGION_NAME": REGION,
            "OS_INTERFACE": "public",
        }


def get_token(credentials: Credentials, timeout: float = 10.0) -> Tuple[str, Dict[str, Any]]:
    """(token id, token body) from ``POST /v3/auth/tokens``; RuntimeError unless 201."""
    response = http_request(
        "POST", f"{credentials.auth_url}/auth/tokens", credentials.auth_body(), timeout=timeout
    )
    if response.status != 201:
        raise RuntimeError(
            f"token for {credentials.username}: HTTP {response.status} {response.body[:300]!r}"
        )
    return response.headers["X-Subject-Token"], response.json()["token"]


def _format_option(value: OptionValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return str(value)


def render_ini(sections: Mapping[str, Mapping[str, OptionValue]]) -> str:
    """oslo.config INI text; options whose value is None are left out."""
    out = []
    for section, options in sections.items():
        out.append(f"[{section}]")
        out.extend(f"{key} = {_format_option(value)}" for key, value in options.items() if value is not None)
        out.append("")
    return "\n".join(out)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class OpenStack:
    """RabbitMQ + Keystone + a Cinder config/database under *root*, for integration tests.

    Service processes are started with ``ip netns exec <netns>`` if *netns* is given and
    listen on *host* (which the test process must be able to reach).  Use as a context
    manager or call :meth:`close`.
    """

    def __init__(
        self,
        root: Path,
        venv: Path,
        host: str = "127.0.0.1",
        netns: Optional[str] = None,
        service_user: str = "cinder",
        *,
        endpoint_host: Optional[str] = None,
        admin_password: Optional[str] = None,
        service_password: Optional[str] = None,
        rabbit_password: Optional[str] = None,
    ) -> None:
        self.root = Path(root).absolute()
        self.venv = Path(venv).absolute()
        self.host = host
        # Where the catalog's volumev3 endpoints point: the cinder-api on host, or the
        # virtual IP of a cluster that runs cinder-api (as the HA guide registers them).
        self.endpoint_host = endpoint_host or host
        self.netns = netns
        self.service_user = service_user
        self.cinder_host = CINDER_HOST
        self.region = REGION
        self._rabbit_password = rabbit_password or secrets.token_urlsafe(24)
        self.admin = Credentials(
            self.keystone_url, "admin", admin_password or secrets.token_urlsafe(24), "admin"
        )
        self.service = Credentials(
            self.keystone_url,
            KEYSTONE_SERVICE_USER,
            service_password or secrets.token_urlsafe(24),
            "service",
        )
        self._rabbit: Optional[Process] = None
        self._rabbit_extra: List[Process] = []  # the launcher if beam is not it, epmd
        self._keystone: Optional[Process] = None
        self.database = Postgres(self.root / "postgres", service_user)
        self._postgres: Optional[Process] = None
        self.etcd = Etcd(self.root / "etcd", host)  # started only for active/active
        self._etcd: Optional[Process] = None
        self._accounts_done = False
        self._tenants: Dict[str, Credentials] = {}
        # (token, project id) per credentials, for the API calls below: one token serves many
        # polls (a held volume's every 0.5 s), another is fetched once cinder-api answers 401.
        self._tokens: Dict[Credentials, Tuple[str, str]] = {}
        self._db_synced = False
        self._root_prepared = False

    # ---- addresses --------------------------------------------------------------------

    @property
    def keystone_url(self) -> str:
        """Keystone v3 endpoint, e.g. ``http://127.0.0.1:5000/v3``."""
        return f"http://{_hostport(self.host, KEYSTONE_PORT)}/v3"

    @property
    def cinder_url(self) -> str:
        """Cinder API root, e.g. ``http://127.0.0.1:8776`` (served by the cinder-api under test)."""
        return f"http://{_hostport(self.endpoint_host, CINDER_API_PORT)}"

    @property
    def transport_url(self) -> str:
        """oslo.messaging transport URL of the private RabbitMQ (contains its password)."""
        return f"rabbit://{RABBIT_USER}:{self._rabbit_password}@{_hostport(self.host, AMQP_PORT)}/"

    # ---- paths --------------------------------------------------------------------------

    @property
    def log_dir(self) -> Path:
        """Logs of the harness' own services (RabbitMQ stdout, Keystone, one-shot commands)."""
        return self.root / "log"

    @property
    def rabbit_dir(self) -> Path:
        return self.root / "rabbitmq"

    @property
    def keystone_dir(self) -> Path:
        return self.root / "keystone"

    @property
    def keystone_access_log(self) -> Path:
        """gunicorn access log of Keystone (one line per request, e.g. POST /v3/auth/tokens)."""
        return self.log_dir / "keystone-access.log"

    @property
    def cinder_etc(self) -> Path:
        return self.root / "cinder"

    @property
    def cinder_conf(self) -> Path:
        return self.cinder_etc / "cinder.conf"

    @property
    def cinder_log_dir(self) -> Path:
        return self.root / "cinder-log"

    @property
    def cinder_state_dir(self) -> Path:
        return self.root / "cinder-state"

    @property
    def cinder_lock_dir(self) -> Path:
        return self.cinder_state_dir / "lock"

    @property
    def cinder_backup_dir(self) -> Path:
        return self.root / "cinder-backup"

    def cinder_bin(self, name: str) -> Path:
        """A command of the stack venv, e.g. ``cinder_bin("cinder-volume")``."""
        return self.venv / "bin" / name

    # ---- service user -------------------------------------------------------------------

    def service_user_ids(self) -> Tuple[int, int]:
        """(uid, gid) of the service user."""
        account = pwd.getpwnam(self.service_user)
        return account.pw_uid, account.pw_gid

    def service_env(self) -> Dict[str, str]:
        """A clean environment (no proxies, no PYTHONPATH) for Cinder commands."""
        return {
            "PATH": f"{self.venv / 'bin'}:{SYSTEM_PATH}",
            "HOME": str(self.cinder_state_dir),
            "LANG": "C.UTF-8",
            "PYTHONWARNINGS": "ignore",  # eventlet/oslo deprecation spam
        }

    def cinder_manage(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
        """``cinder-manage --config-file cinder.conf ARGS`` as the service user (output kept)."""
        uid, gid = self.service_user_ids()
        return subprocess.run(
            [str(self.cinder_bin("cinder-manage")), "--config-file", str(self.cinder_conf), *args],
            env=self.service_env(),
            cwd=str(self.root),
            user=uid,
            group=gid,
            extra_groups=[],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )

    # ---- internals ----------------------------------------------------------------------

    def _prefix(self) -> List[str]:
        if self.netns is None:
            return []
        return [shutil.which("ip", path=SYSTEM_PATH) or "ip", "netns", "exec", self.netns]

    def _launch(
        self, name: str, argv: List[str], env: Mapping[str, str], cwd: Path, log: Path,
        as_service_user: bool = False,
    ) -> Process:  # fmt: skip
        """argv as a daemon in a session of its own, its output appended to log: the Process
        that stops it by PID."""
        owner: Dict[str, Any] = {}
        if as_service_user:
            uid, gid = self.service_user_ids()
            owner = {"user": uid, "group": gid, "extra_groups": []}
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv, env=env, cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, **owner,
            )  # fmt: skip
        return Process.attach(name, popen.pid, popen)

    def _mkdir(self, path: Path, mode: int = 0o755, owner: Optional[Tuple[int, int]] = None) -> None:
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
        if owner is not None:
            os.chown(path, *owner)

    def _make_traversable(self) -> None:
        """Every ancestor of root must be searchable by the service user and by nobody."""
        for directory in [*reversed(self.root.parents), self.root]:
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                LOG.warning(
                    "adding o+x to %s so that %s can reach %s", directory, self.service_user, self.root
                )
                os.chmod(directory, stat.S_IMODE(mode) | stat.S_IXOTH)
        for user in (self.service_user, "nobody"):
            account = pwd.getpwnam(user)
            check = subprocess.run(
                ["/usr/bin/test", "-x", str(self.root)],
                user=account.pw_uid,
                group=account.pw_gid,
                extra_groups=[],
                check=False,
            )
            if check.returncode != 0:
                raise RuntimeError(f"{self.root} is not traversable by {user}")

    def _prepare_root(self) -> None:
        if self._root_prepared:
            return
        ensure_service_user(self.service_user)
        self._mkdir(self.root)
        self._make_traversable()
        for directory in (self.log_dir, self.rabbit_dir, self.keystone_dir, self.cinder_etc):
            self._mkdir(directory)
        owner = self.service_user_ids()
        for directory in (
            self.cinder_log_dir,
            self.cinder_state_dir,
            self.cinder_lock_dir,
            self.cinder_backup_dir,
        ):
            self._mkdir(directory, 0o750, owner)
        # trust authentication: only the service user (and root) may reach the socket
        for directory in (self.database.directory, self.database.socket_dir):
            self._mkdir(directory, 0o700, owner)
        if self.netns is not None:
            # Erlang distribution and epmd use 127.0.0.1 inside the namespace.
            ip_cmd = shutil.which("ip", path=SYSTEM_PATH) or "ip"
            subprocess.run([ip_cmd, "-n", self.netns, "link", "set", "lo", "up"], check=True)
        self._root_prepared = True

    def _run(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        timeout: float = 300.0,
        as_service_user: bool = False,
    ) -> None:
        """Run a one-shot command, output appended to log/<name>.out; raise on failure."""
        out_path = self.log_dir / f"{name}.out"
        kwargs: Dict[str, Any] = {}
        if as_service_user:
            uid, gid = self.service_user_ids()
            kwargs = {"user": uid, "group": gid, "extra_groups": []}
        with out_path.open("ab") as out:
            result = subprocess.run(
                list(argv),
                env=dict(env),
                cwd=str(self.root),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
                **kwargs,
            )
        if result.returncode != 0:
            raise RuntimeError(
                f"{name} failed (exit {result.returncode}): {' '.join(argv)}\n{_tail(out_path)}"
            )

    # ---- RabbitMQ -----------------------------------------------------------------------

    def _rabbit_env(self) -> Dict[str, str]:
        rmq = self.rabbit_dir
        return {
            "PATH": SYSTEM_PATH,
            "HOME": str(rmq),  # .erlang.cookie
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "RABBITMQ_NODENAME": "rabbit@localhost",
            "RABBITMQ_CONFIG_FILE": str(rmq / "rabbitmq"),  # ".conf" is appended
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(rmq / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(rmq / "rabbitmq-env.conf"),
            "RABBITMQ_MNESIA_BASE": str(rmq / "mnesia"),
            "RABBITMQ_LOG_BASE": str(rmq / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(rmq / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(rmq / "rabbit.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(EPMD_PORT),
        }

    def _write_rabbit_config(self) -> None:
        rmq = self.rabbit_dir
        for sub in ("mnesia", "log"):
            self._mkdir(rmq / sub)
        conf = rmq / "rabbitmq.conf"
        conf.touch(mode=0o600)
        os.chmod(conf, 0o600)
        conf.write_text(
            "# written by the cinder-ocf test harness\n"
            f"listeners.tcp.default = {self.host}:{AMQP_PORT}\n"
            "distribution.listener.interface = 127.0.0.1\n"
            f"distribution.listener.port_range.min = {ERLANG_DIST_PORT}\n"
            f"distribution.listener.port_range.max = {ERLANG_DIST_PORT}\n"
            # applied on the first boot only (empty mnesia); not guest: guest is loopback-only
            f"default_user = {RABBIT_USER}\n"
            f"default_pass = {self._rabbit_password}\n"
            "default_vhost = /\n"
            "vm_memory_high_watermark.relative = 0.2\n"
            "disk_free_limit.absolute = 50MB\n"
        )
        (rmq / "enabled_plugins").write_text("[].\n")  # no management plugin
        (rmq / "rabbitmq-env.conf").write_text("")  # ignore /etc/rabbitmq/rabbitmq-env.conf

    def _listener_pids(self, port: int) -> List[int]:
        """PIDs holding a socket listening on TCP *port* in the services' network namespace.

        psutil reads the TCP tables of the namespace its process is in (a thread that joined
        another one still reads its process'): it is asked by a Python started in that one.
        """
        result = subprocess.run(
            [*self._prefix(), sys.executable, "-c", _LISTENERS, str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            check=False,
        )
        return [int(pid) for pid in result.stdout.split()]

    def rabbitmq_running(self) -> bool:
        return self._rabbit is not None and self._rabbit.alive()

    def start_rabbitmq(self, timeout: float = 90.0) -> None:
        """Start the private RabbitMQ and wait until it is booted (no-op if running)."""
        if self.rabbitmq_running():
            return
        self._prepare_root()
        self._write_rabbit_config()
        env = self._rabbit_env()
        pid_file = self.rabbit_dir / "rabbit.pid"
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        epmd_before = self._listener_pids(EPMD_PORT)
        t0 = time.monotonic()
        out_path = self.log_dir / "rabbitmq.out"
        launcher = self._launch("rabbitmq-server", [*self._prefix(), str(RABBITMQ_SERVER)], env,
                                self.rabbit_dir, out_path)  # fmt: skip
        self._rabbit = launcher
        try:
            self._wait_rabbit(launcher, env, pid_file, timeout)
            beam_pid = int(pid_file.read_text().strip())
            if beam_pid != launcher.pid:
                # directly, the scripts exec into erl -> beam.smp; `ip netns exec` forks first
                self._rabbit = Process.attach("rabbitmq (beam)", beam_pid)
                self._rabbit_extra.append(launcher)
            self._record_epmd(epmd_before)
        except BaseException:
            if self._rabbit is not None and self._rabbit is launcher:
                # The VM may have spawned epmd before it failed: stop that too, or it keeps
                # the services' namespace in use for every later run.
                self._record_epmd(epmd_before)
            self.stop_rabbitmq()
            raise
        if self.netns is None and not tcp_port_open(self.host, AMQP_PORT, 5.0):
            raise RuntimeError(f"rabbitmq booted but {self.host}:{AMQP_PORT} refuses connections")
        LOG.info(
            "rabbitmq ready in %.1f s (pid %d, amqp %s)",
            time.monotonic() - t0,
            self._rabbit.pid,
            _hostport(self.host, AMQP_PORT),
        )

    def _wait_rabbit(self, server: Process, env: Mapping[str, str], pid_file: Path, timeout: float) -> None:
        # rabbitmqctl wait fails at once (garbage_in_pid_file) if it reads the pid file between
        # its creation and the write of the pid: seen once in a RabbitMQ restart under load.
        # So it is asked only once the file holds a number.
        deadline = time.monotonic() + timeout
        while not _holds_a_pid(pid_file):
            if not server.alive():
                raise RuntimeError(
                    "rabbitmq-server exited during start:\n" + _tail(self.log_dir / "rabbitmq.out")
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"rabbitmq-server wrote no pid to {pid_file} within {timeout:g} s")
            time.sleep(0.1)
        waiter = subprocess.Popen(
            [*self._prefix(), str(RABBITMQCTL), "-q", "wait", "--timeout", str(int(timeout)), str(pid_file)],
            env=dict(env),
            cwd=str(self.rabbit_dir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout + 10
        try:
            while waiter.poll() is None:
                if not server.alive() and not pid_file.exists():
                    raise RuntimeError(
                        "rabbitmq-server exited during start:\n" + _tail(self.log_dir / "rabbitmq.out")
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError("rabbitmqctl wait did not return")
                time.sleep(0.1)
        finally:
            if waiter.poll() is None:
                Process.attach("rabbitmqctl wait", waiter.pid, waiter).stop(5.0, signal.SIGKILL)
        output = waiter.stdout.read().decode(errors="replace") if waiter.stdout else ""
        if waiter.stdout:
            waiter.stdout.close()
        if waiter.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl wait failed ({waiter.returncode}): {output}\n"
                + _tail(self.log_dir / "rabbitmq.out")
            )

    def _record_epmd(self, epmd_before: List[int]) -> None:
        """epmd is spawned (and daemonised) by the Erlang VM: find it by its port, record it."""
        if epmd_before:
            LOG.info("epmd already running (pid %s): not ours, left alone", epmd_before)
            return
        for pid in self._listener_pids(EPMD_PORT):  # beam's namespace: the services'
            try:
                name = psutil.Process(pid).name()
            except psutil.Error:
                continue
            if name.startswith("epmd"):
                with contextlib.suppress(ProcessLookupError):
                    self._rabbit_extra.append(Process.attach("epmd", pid))
                return
        LOG.warning("epmd of rabbitmq not found: it will not be stopped")

    def stop_rabbitmq(self) -> None:
        """Stop RabbitMQ (and the epmd it started) by PID; waits until they are gone."""
        if self._rabbit is not None:
            self._rabbit.stop(timeout=30.0)
            self._rabbit = None
        for proc in reversed(self._rabbit_extra):
            proc.stop(timeout=10.0)
        self._rabbit_extra = []

    # ---- etcd ---------------------------------------------------------------------------

    def etcd_running(self) -> bool:
        return self._etcd is not None and self._etcd.alive()

    def start_etcd(self, timeout: float = 60.0) -> None:
        """Start the private etcd in the stack's namespace (as root, like RabbitMQ: `ip netns
        exec` needs it), and wait until it says it is healthy (no-op if running).  Call it where
        the stack's address answers (in its namespace)."""
        if self.etcd_running():
            return
        self._prepare_root()
        self._mkdir(self.etcd.directory, 0o700)
        t0 = time.monotonic()
        self._etcd = self._launch(
            "etcd", [*self._prefix(), *self.etcd.server_argv()],
            {"PATH": SYSTEM_PATH, "HOME": str(self.etcd.directory)}, self.etcd.directory, self.etcd.log_file,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while not self.etcd.healthy():
                if not self._etcd.alive() or time.monotonic() > deadline:
                    raise RuntimeError("etcd did not start:\n" + _tail(self.etcd.log_file))
                time.sleep(0.1)
        except BaseException:
            self.stop_etcd()
            raise
        LOG.info("etcd healthy in %.1f s (pid %d, %s)", time.monotonic() - t0, self._etcd.pid,
                 self.etcd.client_url)  # fmt: skip

    def stop_etcd(self) -> None:
        """Stop etcd by PID and wait until it is gone."""
        if self._etcd is not None:
            self._etcd.stop(timeout=15.0)
            self._etcd = None

    # ---- PostgreSQL ---------------------------------------------------------------------

    def postgres_running(self) -> bool:
        return self._postgres is not None and self._postgres.alive()

    def start_postgres(self, timeout: float = 60.0) -> None:
        """initdb (first time), start the server as the service user, create the databases.

        In the host's network namespace even for a stack in one: it listens on no address,
        and its socket is a file every namespace reaches.
        """
        if self.postgres_running():
            return
        self._prepare_root()
        database = self.database
        if not database.initialised():
            self._run("initdb", database.initdb_argv(), self.service_env(), as_service_user=True)
        t0 = time.monotonic()
        self._postgres = self._launch(
            "postgres", database.server_argv(), self.service_env(), database.directory, database.log_file,
            as_service_user=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while not database.ready():
                if not self._postgres.alive() or time.monotonic() > deadline:
                    raise RuntimeError("postgres did not start:\n" + _tail(database.log_file))
                time.sleep(0.1)
            for name in ("keystone", "cinder"):
                self._ensure_database(name)
        except BaseException:
            self.stop_postgres()
            raise
        LOG.info("postgres ready in %.1f s (pid %d)", time.monotonic() - t0, self._postgres.pid)

    def _ensure_database(self, name: str) -> None:
        uid, gid = self.service_user_ids()
        found = subprocess.run(
            self.database.psql_argv(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"),
            env=self.service_env(),
            capture_output=True,
            text=True,
            check=True,
            user=uid,
            group=gid,
            extra_groups=[],
        ).stdout.strip()
        if found != "1":
            argv = self.database.psql_argv(f'CREATE DATABASE "{name}"')
            self._run("psql", argv, self.service_env(), as_service_user=True)

    def stop_postgres(self) -> None:
        """Stop the server by PID: SIGINT is its fast shutdown (clients are disconnected)."""
        if self._postgres is not None:
            self._postgres.stop(timeout=20.0, signum=signal.SIGINT)
            self._postgres = None

    # ---- Keystone -----------------------------------------------------------------------

    @property
    def keystone_conf(self) -> Path:
        return self.keystone_dir / "keystone.conf"

    def _keystone_env(self) -> Dict[str, str]:
        return {
            "PATH": f"{self.venv / 'bin'}:{SYSTEM_PATH}",
            "HOME": str(self.keystone_dir),
            "LANG": "C.UTF-8",
            "PYTHONWARNINGS": "ignore",
            "OS_KEYSTONE_CONFIG_DIR": str(self.keystone_dir),
        }

    def _write_keystone_conf(self) -> None:
        kdir = self.keystone_dir
        text = render_ini(
            {
                "DEFAULT": {"log_file": self.log_dir / "keystone.log", "debug": False},
                "database": {"connection": self.database.url("keystone")},
                "token": {"provider": "fernet"},
                "fernet_tokens": {"key_repository": f"{kdir / 'fernet-keys'}/"},
                "credential": {"key_repository": f"{kdir / 'credential-keys'}/"},
                # in-process cache (one gunicorn worker): ~12 ms per token instead of ~370 ms
                "cache": {"enabled": True, "backend": "dogpile.cache.memory"},
                # bcrypt cost 4 (default 12); must be set before bootstrap creates users
                "identity": {"password_hash_rounds": 4},
            }
        )
        self.keystone_conf.touch(mode=0o600)
        os.chmod(self.keystone_conf, 0o600)
        self.keystone_conf.write_text("# written by the cinder-ocf test harness\n" + text)

    def _setup_keystone(self) -> None:
        """keystone.conf, keys, db_sync, bootstrap: once per root."""
        done = self.keystone_dir / ".bootstrapped"
        if done.exists():
            return
        t0 = time.monotonic()
        self._write_keystone_conf()
        (self.keystone_dir / "keystone_wsgi.py").write_text(KEYSTONE_WSGI)
        manage = [str(self.cinder_bin("keystone-manage")), "--config-file", str(self.keystone_conf)]
        env = self._keystone_env()
        owner = ["--keystone-user", "root", "--keystone-group", "root"]
        self._run("keystone-manage", [*manage, "fernet_setup", *owner], env)
        self._run("keystone-manage", [*manage, "credential_setup", *owner], env)
        self._run("keystone-manage", [*manage, "db_sync"], env)
        url = f"{self.keystone_url}/"
        self._run(
            "keystone-manage",
            [
                *manage,
                "bootstrap",
                "--bootstrap-username",
                self.admin.username,
                "--bootstrap-project-name",
                self.admin.project_name,
                "--bootstrap-role-name",
                "admin",
                "--bootstrap-region-id",
                self.region,
                "--bootstrap-admin-url",
                url,
                "--bootstrap-internal-url",
                url,
                "--bootstrap-public-url",
                url,
            ],
            # the password only in the environment, never on the command line
            dict(env, OS_BOOTSTRAP_PASSWORD=self.admin.password),
        )
        done.touch()
        LOG.info("keystone keys + db_sync + bootstrap in %.1f s", time.monotonic() - t0)

    def keystone_running(self) -> bool:
        return self._keystone is not None and self._keystone.alive()

    def start_keystone(self, timeout: float = 90.0) -> None:
        """Set Keystone up (first time), start gunicorn and wait until it answers."""
        if self.keystone_running():
            return
        self._prepare_root()
        self._setup_keystone()
        t0 = time.monotonic()
        argv = [
            *self._prefix(),
            str(self.cinder_bin("gunicorn")),
            "--pythonpath",
            str(self.keystone_dir),
            "--chdir",
            str(self.keystone_dir),
            "--bind",
            _hostport(self.host, KEYSTONE_PORT),
            "--workers",
            "1",
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--timeout",
            "120",
            "--graceful-timeout",
            "5",
            "--access-logfile",
            str(self.keystone_access_log),
            "--access-logformat",
            KEYSTONE_ACCESS_LOG_FORMAT,
            "--error-logfile",
            str(self.log_dir / "keystone-gunicorn.log"),
            "--capture-output",
            "keystone_wsgi:application",
        ]
        self._keystone = self._launch("keystone (gunicorn)", argv, self._keystone_env(), self.keystone_dir,
                                      self.log_dir / "keystone-gunicorn.out")  # fmt: skip
        try:
            self._wait_keystone(timeout)
        except BaseException:
            self.stop_keystone()
            raise
        LOG.info(
            "keystone answering in %.1f s (gunicorn pid %d, %s)",
            time.monotonic() - t0,
            self._keystone.pid,
            self.keystone_url,
        )

    def _wait_keystone(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self._keystone is not None
            if not self._keystone.alive():
                raise RuntimeError(
                    "keystone (gunicorn) exited:\n" + _tail(self.log_dir / "keystone-gunicorn.log")
                )
            with contextlib.suppress(OSError):
                if http_request("GET", self.keystone_url, timeout=2.0).status == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"keystone not answering after {timeout} s:\n"
                    + _tail(self.log_dir / "keystone-gunicorn.log")
                )
            time.sleep(0.1)

    def keystone_pids(self) -> List[int]:
        """Keystone's processes, gunicorn's master and its workers ([] when it is not running):
        what the bench reads Keystone's CPU time from."""
        if self._keystone is None or not self._keystone.alive():
            return []
        return [self._keystone.pid, *children(self._keystone.pid, recursive=True)]

    def stop_keystone(self) -> None:
        """Stop Keystone's gunicorn (master and workers) by PID and wait until gone."""
        if self._keystone is not None:
            self._keystone.stop(timeout=15.0)
            self._keystone = None

    def admin_token(self) -> Tuple[str, str]:
        """(token, admin project id) for the admin user."""
        token, body = get_token(self.admin)
        return token, body["project"]["id"]

    def tenant(self, name: str = "demo") -> Credentials:
        """A cloud user: project and user `name`, with the member role on it (what cinder's
        default policy asks of a project's own volumes); its password only in memory."""
        if name not in self._tenants:
            token, _ = self.admin_token()
            api = _KeystoneAdmin(self.keystone_url, token)
            credentials = Credentials(self.keystone_url, name, secrets.token_urlsafe(24), name)
            project = api.find_or_create("projects", {"name": name, "domain_id": "default"}, {})
            # The password with the user, as for the service user: a change right after would
            # revoke the first tokens (Keystone's revocation has a one-second resolution).
            user = api.find_or_create(
                "users", {"name": name, "domain_id": "default"},
                {"password": credentials.password, "default_project_id": project["id"]},
            )  # fmt: skip
            role = api.find_or_create("roles", {"name": "member"}, {})
            api.call("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{role['id']}", expect=(204,))
            self._tenants[name] = credentials
        return self._tenants[name]

    def _ensure_keystone_accounts(self) -> None:
        """service project, cinder user (admin + service roles), volumev3 service/endpoints."""
        if self._accounts_done:
            return
        t0 = time.monotonic()
        token, _ = self.admin_token()
        api = _KeystoneAdmin(self.keystone_url, token)
        project = api.find_or_create(
            "projects",
            {"name": "service", "domain_id": "default"},
            {"description": "Service Project"},
        )
        user = api.find_or_create(
            "users",
            {"name": self.service.username, "domain_id": "default"},
            {"password": self.service.password, "default_project_id": project["id"]},
        )
        for role_name in ("admin", "service"):
            role = api.find_or_create("roles", {"name": role_name}, {})
            api.call("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{role['id']}", expect=(204,))
        service = api.find_or_create(
            "services",
            {"type": "volumev3"},
            {"name": "cinderv3", "description": "OpenStack Block Storage"},
        )
        endpoints = api.call("GET", f"/endpoints?service_id={service['id']}")["endpoints"]
        have = {endpoint["interface"] for endpoint in endpoints}
        for interface in ("public", "internal", "admin"):
            if interface not in have:
                api.call(
                    "POST",
                    "/endpoints",
                    {
                        "endpoint": {
                            "service_id": service["id"],
                            "interface": interface,
                            "url": f"{self.cinder_url}/v3/%(project_id)s",
                            "region_id": self.region,
                        }
                    },
                    expect=(201,),
                )
        self._accounts_done = True
        LOG.info(
            "keystone service project, %s user, volumev3 endpoints in %.1f s",
            self.service.username,
            time.monotonic() - t0,
        )

    # ---- Cinder -------------------------------------------------------------------------

    def _cinder_sections(self, backends: Sequence[str]) -> Dict[str, Dict[str, OptionValue]]:
        auth_root = f"http://{_hostport(self.host, KEYSTONE_PORT)}/"
        sections: Dict[str, Dict[str, OptionValue]] = {
            "DEFAULT": {
                "auth_strategy": "keystone",
                "transport_url": self.transport_url,
                "my_ip": self.host,
                "host": self.cinder_host,
                "osapi_volume_listen": self.host,
                "osapi_volume_listen_port": CINDER_API_PORT,
                "osapi_volume_workers": 1,
                "state_path": self.cinder_state_dir,
                "log_dir": self.cinder_log_dir,
                "debug": False,
                "api_paste_config": self.cinder_etc / "api-paste.ini",
                "resource_query_filters_file": self.cinder_etc / "resource_filters.json",
                "report_interval": 2,
                "service_down_time": 10,
                "periodic_interval": 10,
                "scheduler_driver_init_wait_time": 3,
                "enabled_backends": list(backends),
                "backup_driver": POSIX_BACKUP_DRIVER,
                "backup_posix_path": self.cinder_backup_dir,
            },
            "database": {"connection": self.database.url("cinder")},
            "keystone_authtoken": {
                "www_authenticate_uri": auth_root,
                "auth_url": auth_root,
                "auth_type": "password",
                "project_domain_name": self.service.project_domain_name,
                "user_domain_name": self.service.user_domain_name,
                "project_name": self.service.project_name,
                "username": self.service.username,
                "password": self.service.password,
                "region_name": self.region,
            },
            "oslo_concurrency": {"lock_path": self.cinder_lock_dir},
            "oslo_messaging_notifications": {"driver": "noop"},
            "coordination": {"backend_url": f"file://{self.cinder_state_dir / 'coordination'}"},
        }
        for backend in backends:
            sections[backend] = {"volume_driver": FAKE_DRIVER, "volume_backend_name": backend}
        return sections

    def write_cinder_conf(
        self,
        backends: Sequence[str] = ("fake1", "fake2"),
        **overrides: Union[OptionValue, Mapping[str, OptionValue]],
    ) -> Path:
        """Write cinder.conf (0640 root:<service group>) and return its path.

        *overrides*: ``name=value`` sets a ``[DEFAULT]`` option, ``section={...}`` merges
        options into a section (created if new); a value of None removes the option.
        E.g. ``write_cinder_conf(debug=True, fake1={"volume_backend_name": "gold"})``.
        """
        self._prepare_root()
        for name in ("api-paste.ini", "resource_filters.json"):
            shutil.copyfile(self.venv / "etc" / "cinder" / name, self.cinder_etc / name)
            os.chmod(self.cinder_etc / name, 0o644)
        sections = self._cinder_sections(backends)
        for key, value in overrides.items():
            if isinstance(value, Mapping):
                sections.setdefault(key, {}).update(value)
            else:
                sections["DEFAULT"][key] = value
        gid = self.service_user_ids()[1]
        tmp = self.cinder_conf.with_name(".cinder.conf.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("# written by the cinder-ocf test harness\n" + render_ini(sections))
        os.chown(tmp, 0, gid)
        os.chmod(tmp, 0o640)
        os.replace(tmp, self.cinder_conf)
        return self.cinder_conf

    def sync_cinder_db(self) -> None:
        """``cinder-manage db sync`` as the service user."""
        t0 = time.monotonic()
        self._run(
            "cinder-manage",
            [str(self.cinder_bin("cinder-manage")), "--config-file", str(self.cinder_conf), "db", "sync"],
            self.service_env(),
            as_service_user=True,
        )
        self._db_synced = True
        LOG.info("cinder db sync in %.1f s", time.monotonic() - t0)

    def os_services(self, binary: Optional[str] = None) -> List[Dict[str, Any]]:
        """``GET /v3/{admin project}/os-services[?binary=...]`` (needs a running cinder-api)."""
        query = "" if binary is None else "?" + urllib.parse.urlencode({"binary": binary})
        response = self.api_call("GET", lambda project: f"/v3/{project}/os-services{query}")
        if response.status != 200:
            raise RuntimeError(f"GET os-services: HTTP {response.status} {response.body[:300]!r}")
        services: List[Dict[str, Any]] = response.json()["services"]
        return services

    def scheduler_pools(self) -> List[str]:
        """The pools (``host@backend#pool``) the scheduler has capabilities of, through
        ``GET /v3/{admin project}/scheduler-stats/get_pools``: a create is scheduled only to
        these.  A backend's heartbeat in os-services comes before (the capabilities travel on
        the scheduler's fanout, published at start and every periodic_interval)."""
        response = self.api_call("GET", lambda project: f"/v3/{project}/scheduler-stats/get_pools")
        if response.status != 200:
            raise RuntimeError(f"GET get_pools: HTTP {response.status} {response.body[:300]!r}")
        return [pool["name"] for pool in response.json()["pools"]]

    def volumes_call(
        self, method: str, path: str = "", body: Any = None, credentials: Optional[Credentials] = None
    ) -> HttpResponse:
        """``{method} /v3/{project}/volumes{path}`` as credentials (default: the admin)."""
        return self.api_call(method, lambda project: f"/v3/{project}/volumes{path}", body, credentials)

    def clusters(self) -> List[Dict[str, Any]]:
        """cinder-volume's clusters (``GET /v3/{admin project}/clusters/detail``, microversion
        3.7): name, state, num_hosts, num_down_hosts."""
        response = self.api_call(
            "GET", lambda project: f"/v3/{project}/clusters/detail?binary=cinder-volume",
            headers={"OpenStack-API-Version": "volume 3.7"},
        )  # fmt: skip
        if response.status != 200:
            raise RuntimeError(f"GET clusters: HTTP {response.status} {response.body[:300]!r}")
        clusters: List[Dict[str, Any]] = response.json()["clusters"]
        return clusters

    def api_call(
        self, method: str, path_of: Callable[[str], str], body: Any = None,
        credentials: Optional[Credentials] = None, headers: Optional[Mapping[str, str]] = None,
    ) -> HttpResponse:  # fmt: skip
        """``{method} {cinder_url}{path_of(project id)}`` as credentials (default: the admin),
        with the token kept from the last call; a 401 (expired, revoked) fetches one more."""
        credentials = credentials or self.admin
        for fresh in (credentials not in self._tokens, True):
            if fresh:
                token, scoped = get_token(credentials)
                self._tokens[credentials] = (token, scoped["project"]["id"])
            token, project = self._tokens[credentials]
            response = http_request(method, f"{self.cinder_url}{path_of(project)}", body,
                                    headers={**(headers or {}), "X-Auth-Token": token})  # fmt: skip
            if response.status != 401:
                break
        return response

    # ---- whole stack --------------------------------------------------------------------

    def start(self) -> None:
        """PostgreSQL, RabbitMQ, Keystone (with accounts), cinder.conf, cinder db sync.
        Idempotent."""
        t0 = time.monotonic()
        self._prepare_root()
        self.start_postgres()
        self.start_rabbitmq()
        self.start_keystone()
        self._ensure_keystone_accounts()
        if not self.cinder_conf.exists():
            self.write_cinder_conf()
        if not self._db_synced:
            self.sync_cinder_db()
        LOG.info("openstack stack under %s ready in %.1f s", self.root, time.monotonic() - t0)

    def close(self) -> None:
        """Stop everything this object started (by PID) and wait; safe to call again."""
        errors: List[BaseException] = []
        for stop in (self.stop_keystone, self.stop_rabbitmq, self.stop_etcd, self.stop_postgres):
            try:
                stop()
            except Exception as err:  # keep stopping the others
                LOG.exception("stopping failed")
                errors.append(err)
        if errors:
            raise errors[0]

    def __enter__(self) -> OpenStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _holds_a_pid(path: Path) -> bool:
    try:
        return path.read_text().strip().isdigit()
    except OSError:
        return False


class _KeystoneAdmin:
    """Minimal Keystone v3 admin REST client (urllib)."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.headers = {"X-Auth-Token": token}

    def call(self, method: str, path: str, body: Any = None, expect: Tuple[int, ...] = (200,)) -> Any:
        response = http_request(method, self.url + path, body, headers=self.headers)
        if response.status not in expect:
            raise RuntimeError(f"keystone {method} {path}: HTTP {response.status} {response.body[:300]!r}")
        return response.json() if response.body else None

    def find_or_create(
        self, collection: str, query: Mapping[str, str], extra: Mapping[str, Any]
    ) -> Dict[str, Any]:
        """The first *collection* entry matching *query*, created (query + extra) if none."""
        found = self.call("GET", f"/{collection}?{urllib.parse.urlencode(query)}")[collection]
        if found:
            entry: Dict[str, Any] = found[0]
            return entry
        member = collection[:-1]
        created: Dict[str, Any] = self.call(
            "POST", f"/{collection}", {member: {**query, **extra}}, expect=(201,)
        )[member]
        return created


@contextlib.contextmanager
def running_stack(root: Path, venv: Path, **kwargs: Any) -> Iterator[OpenStack]:
    """``with running_stack(root, venv) as stack:`` start()ed, close()d at the end."""
    stack = OpenStack(root, venv, **kwargs)
    try:
        stack.start()
        yield stack
    finally:
        stack.close()
