"""One resource of any agent, with the fakes it talks to, for the fault, secret and race tests.

A Resource is an agent executable (as Pacemaker runs it), a fake daemon (tests/fakes), its
cinder.conf, HA_RSCTMP, a fake Keystone and, for the RPC services, a fake broker and a fake
os-services.  Faults the fakes cannot make (an API that hangs, resets, answers garbage or
speaks TLS with an untrusted certificate) come from FaultServer, a listener of the tests' own.
"""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from lab.host import open_dir, process_state, session_members, wait_until
from lab.resource import Agent, AgentRun
from tests.conftest import ROOT, free_port
from tests.fakes.broker import FakeBroker, FakeServices
from tests.fakes.keystone import FakeKeystone

AGENT_NAMES = ["cinder-api", "cinder-volume", "cinder-scheduler", "cinder-backup", "cinder-schedule"]
RPC_NAMES = AGENT_NAMES[1:]
START_GRACE_S = 4
# What an action cut short by its operation timeout answers: the supervisor's own reason, or,
# on a node so starved that its last check overran the deadline by half a second, the alarm's
# (dispatch.py); both are the agent's answer before Pacemaker's timeout, which is the contract.
CUT_SHORT = ("did not become healthy within", "did not finish within its timeout")
# Distinctive, with characters that need quoting in a shell, a URL and JSON.
PASSWORD = "Xyzzy-s3cret;$(id)`id`%2F&pw"
RABBIT_PASSWORD = "Rabbit-xyzzy-s3cret"
CONF_PASSWORD = "Conf-xyzzy-s3cret"


class Resource:
    """One resource of agent `name`, not running until a test starts it."""

    def __init__(self, agents_dir: Path, name: str, heartbeat: bool = True, runner: str = "fork") -> None:
        self.name = name
        self.api = name == "cinder-api"
        self.volume = name == "cinder-volume"
        self.workdir = open_dir("cinder-ocf-faults-")
        self.rsctmp = self.workdir / "rsctmp"
        self.rsctmp.mkdir(mode=0o755)
        # The fake Keystone's list of issued tokens is the tests' own file, not the agent's.
        self.tokens_file = self.workdir / "fake-keystone-tokens"
        self.tokens_file.touch()
        self.keystone = FakeKeystone(self.tokens_file)
        self.broker: Optional[FakeBroker] = None
        self.services: Optional[FakeServices] = None
        self.port = free_port()
        fake = "fake_cinder_api.py" if self.api else "fake_cinder_rpc.py"
        self.binary = self.workdir / ("fake-" + name)
        self.binary.write_text(f"#!{sys.executable}\n" + (ROOT / "tests/fakes" / fake).read_text())
        self.binary.chmod(0o755)
        self.config = self.workdir / "cinder.conf"
        params = {
            "binary": str(self.binary),
            "config": str(self.config),
            "user": "root",
            "check_timeout": "2",
            "os_username": "monitor",
            "os_password": PASSWORD,
            "os_project_name": "admin",
            "os_auth_url": self.keystone.url,
        }
        if not self.api:
            self.broker = FakeBroker()
            service = "cinder-scheduler" if name == "cinder-schedule" else name
            self.services = FakeServices(service)
            hosts = ["cluster@b1", "cluster@b2"] if self.volume else ["cluster"]
            self.services.rows = {host: "up" for host in hosts}
            # Time for the fake to start its interpreter, fork and connect on a loaded node
            # (two CPU burners beside four test workers on two cores).
            params["start_grace"] = str(START_GRACE_S)
            if name in ("cinder-volume", "cinder-backup"):
                # The fake broker is a TCP listener, not AMQP: the consumer count of one server
                # per service host is the real stack's to show (tests/unit/test_service_host.py
                # turns the guard on for its start side).
                params["guard_service_host"] = "false"
            if heartbeat:
                params["url"] = self.services.url
            else:
                for key in ("os_username", "os_password", "os_project_name", "os_auth_url"):
                    params.pop(key)
        self.agent = Agent(agents_dir / name, self.rsctmp, f"p_{name}", params, runner=runner)
        self.baseline = dict(params)
        self.configure()

    # ---------------------------------------------------------------- configuration
    def config_lines(self, default: Optional[Dict[str, Optional[str]]] = None, **fake: str) -> List[str]:
        if self.api:
            options: Dict[str, Optional[str]] = {
                "osapi_volume_listen": "127.0.0.1",
                "osapi_volume_listen_port": str(self.port),
            }
            fake.setdefault("tokens_file", str(self.tokens_file))
        else:
            assert self.broker is not None
            options = {
                "host": "cluster",
                "enabled_backends": "b1,b2",
                "transport_url": f"rabbit://openstack:{RABBIT_PASSWORD}@127.0.0.1:{self.broker.port}/",
            }
            if self.volume:
                fake.setdefault("fork", "yes")
        options.update(default or {})
        lines = ["[DEFAULT]", *(f"{k} = {v}" for k, v in options.items() if v is not None)]
        lines += [
            "[keystone_authtoken]",
            f"auth_url = {self.keystone.url.rsplit('/v3', 1)[0]}/",
            "username = cinder",
            f"password = {CONF_PASSWORD}",
            "project_name = service",
        ]
        lines += ["[oslo_messaging_rabbit]", "rabbit_interval_max = 1", "kombu_reconnect_delay = 0"]
        lines += ["[fake]", *(f"{k} = {v}" for k, v in fake.items())]
        return lines

    def configure(self, default: Optional[Dict[str, Optional[str]]] = None, **fake: str) -> None:
        self.config.write_text("\n".join(self.config_lines(default, **fake)) + "\n")
        self.config.chmod(0o644)

    def reset(self) -> None:
        """Back to the baseline parameters and healthy fakes (between rows on a shared resource)."""
        self.agent.params = dict(self.baseline)
        self.keystone.mode = "ok"
        if self.services is not None:
            self.services.status = 200

    # ---------------------------------------------------------------- state
    def pid_file(self) -> Path:
        return self.agent.pid_file()

    def token_cache(self) -> Path:
        return self.rsctmp / f"cinder-ocf-p_{self.name}.token"

    def pid(self) -> Optional[int]:
        return self.agent.leader()

    def members(self) -> List[int]:
        pid = self.pid()
        return session_members(pid) if pid else []

    def run(self, action: str, **kwargs: object) -> AgentRun:
        return self.agent(action, **kwargs)  # type: ignore[arg-type]

    def start(self, runner: Optional[str] = None) -> AgentRun:
        run = self.agent("start", timeout_s=20, runner=runner)
        assert run.rc == 0, run
        return run

    def close(self) -> None:
        """Stop whatever runs (with the baseline parameters), the fakes, and remove the files."""
        leader = self.pid()
        self.agent.params = dict(self.baseline)
        stop = self.agent("stop", timeout_s=15)
        self.keystone.close()
        if self.broker is not None:
            self.broker.stop()
        if self.services is not None:
            self.services.close()
        survivors = []
        if leader is not None and not wait_until(lambda: not session_members(leader), 5):
            survivors = session_members(leader)
            kill_leftovers(survivors)  # ours only: the session of a daemon this test started
        subprocess.run(["rm", "-rf", str(self.workdir)], check=True)
        assert stop.rc == 0, stop
        assert not survivors, f"processes of {self.name} outlived the test: {survivors}"
        assert leader is None or process_state(leader) is None


# ---------------------------------------------------------------- faults of the tests' own


def make_certificate(directory: Path) -> Tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and its key), made with the openssl CLI."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    key.chmod(0o600)
    return cert, key


Answer = Tuple[int, bytes, str]  # status, body, content type


class FaultServer:
    """An HTTP listener on 127.0.0.1 that misbehaves as told.

    mode: hang (reads the request, never answers), reset (a TCP RST), close (closes without
    a word), garbage (not HTTP), chunked (a valid chunked answer), drip (a valid answer a
    byte at a time), or "answer": answer(path)
    gives each request's status, body and content type.  tls: a (cert, key) pair to speak TLS.
    """

    def __init__(
        self,
        mode: str = "answer",
        answer: Optional[Callable[[str], Answer]] = None,
        tls: Optional[Tuple[Path, Path]] = None,
    ) -> None:
        self.mode = mode
        self.answer = answer or (lambda path: (200, b"{}", "application/json"))
        self.requests = 0
        self.paths: List[str] = []  # of every request, in order
        self._context: Optional[ssl.SSLContext] = None
        if tls is not None:
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._context.load_cert_chain(str(tls[0]), str(tls[1]))
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._held: List[socket.socket] = []
        self._closed = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def url(self) -> str:
        scheme = "https" if self._context else "http"
        return f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}"

    def close(self) -> None:
        """Closed, and its threads done: a forked agent (lab/forked.py) must never be forked
        while one of them is inside OpenSSL or holds a lock."""
        self._closed.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        except OSError:
            pass
        self._listener.close()
        for conn in self._held:
            try:
                conn.close()
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if self._closed.is_set():
                conn.close()
                return
            serving = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(serving)
            serving.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self._context is not None:
                conn.settimeout(5)
                try:
                    conn = self._context.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    conn.close()  # the client refused the certificate
                    return
            conn.settimeout(10)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                request += chunk
            self.requests += 1
            path = request.split(b" ", 2)[1].decode("latin-1") if request.count(b" ") >= 2 else "/"
            self.paths.append(path)
            self._respond(conn, path)
        except OSError:
            pass

    def _respond(self, conn: socket.socket, path: str) -> None:
        if self.mode == "hang":
            self._held.append(conn)  # closed by close(), long after the agent gave up
            return
        if self.mode == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()
            return
        if self.mode == "close":
            conn.close()
            return
        if self.mode == "garbage":
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\nnot http at all")
            conn.close()
            return
        status, body, ctype = self.answer(path)
        if self.mode == "drip":
            # A valid answer a byte every 0.2 s: every read succeeds, only a deadline on the
            # whole request ends it.
            head = f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
            for byte in head.encode() + body:
                if self._closed.wait(0.2):
                    break
                conn.sendall(bytes([byte]))
        elif self.mode == "chunked":
            head = f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n"
            chunks = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
            conn.sendall(head.encode() + chunks)
        else:
            head = f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            conn.sendall((head + "Connection: close\r\n\r\n").encode() + body)
        conn.close()


def api_answers(path: str) -> Answer:
    """A healthy cinder-api: the version list on /, 200 for an authenticated request."""
    if path == "/":
        return 300, b'{"versions": []}', "application/json"
    return 200, b'{"volume_types": []}', "application/json"


def services_answers(services: FakeServices) -> Callable[[str], Answer]:
    """A healthy os-services, with the rows of a FakeServices."""
    import json  # noqa: PLC0415

    def answer(path: str) -> Answer:
        return 200, json.dumps(services._body()).encode(), "application/json"

    return answer


def wait_port_free(port: int, timeout_s: float = 5.0) -> bool:
    def free() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) != 0

    return wait_until(free, timeout_s)


def kill_leftovers(pids: List[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.1)


def copy_binary(res: Resource, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    target = directory / res.binary.name
    shutil.copy2(res.binary, target)
    return target
