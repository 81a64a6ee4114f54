"""Stand-ins for what the RPC services talk to: a TCP listener playing the AMQP broker, a
cinder-api that answers os-services, the two requests it passes over the RPC bus (a backend's
capabilities, the scheduler's pools) and its clusters, and etcd's health, each misbehaving on
demand."""

import datetime
import http.server
import json
import socket
import threading
import urllib.parse
from typing import Callable, Dict, List, Optional, Set, Tuple


class FakeBroker:
    """Accepts TCP connections on 127.0.0.1 and holds them; stop() is an outage (the listener
    and every connection closed), start() brings it back on the same port.  It speaks no AMQP:
    a client that sends the protocol header (the agent counting a queue's consumers) has its
    connection closed at once, as a broker that cannot be asked."""

    def __init__(self) -> None:
        self.port = 0
        self._listener: Optional[socket.socket] = None
        self._connections: List[socket.socket] = []
        self._lock = threading.Lock()
        self.start()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._connections.append(conn)
            threading.Thread(target=self._refuse_amqp, args=(conn,), daemon=True).start()

    def _refuse_amqp(self, conn: socket.socket) -> None:
        try:
            if conn.recv(8).startswith(b"AMQP"):
                conn.close()
        except OSError:
            pass

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._connections:
                # shutdown first: a close alone leaves the connection up while the reader
                # thread is still in recv on it.
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # closed already (it spoke AMQP)
                conn.close()
            self._connections = []


class FakeServices:
    """GET /v3/<project>/os-services?binary=...: the rows the tests set, by host.

    rows[host] is one of: up (updated now), down (not updated since go_down()), stale (up, but
    updated before the service under test started), frozen (up, last updated at frozen_at[host]:
    a server that just died), serving (updated now while serving() says the service under test
    runs, else frozen at its last report); extra_rows adds rows of (host, state, seconds since
    its update), after those (before them with extra_first), as cinder keeps a second row when
    two servers of one host first start at once; status forces another HTTP status, and the
    os-services requests numbered in unavailable (from 1) answer 503: cinder-api moving.

    The round trips over the RPC bus: capabilities[host] and pools are "ok" (200), "hang" (no
    answer until close: the service stopped consuming) or an HTTP status ("502": cinder's
    RPCTimeout).
    """

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.rows: Dict[str, str] = {}
        self.extra_rows: List[Tuple[str, str, float]] = []
        self.extra_first = False
        self.status = 200
        self.requests = 0
        self.os_services_requests = 0
        self.unavailable: Set[int] = set()
        self.stale_at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
        self.down_at: Dict[str, datetime.datetime] = {}
        self.frozen_at: Dict[str, datetime.datetime] = {}
        self.serving: Callable[[], bool] = lambda: False
        self.capabilities: Dict[str, str] = {}
        self.pools = "ok"
        # GET /clusters/detail (microversion 3.7 and later): name -> (num_hosts, num_down_hosts)
        self.clusters: Dict[str, Tuple[int, int]] = {}
        self.asked: List[str] = []  # the round trips' paths, in order
        self._closing = threading.Event()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def go_down(self, host: str) -> None:
        """The service's heartbeat for host stops now (and cinder-api calls it down at once)."""
        self.down_at[host] = datetime.datetime.now(datetime.timezone.utc)
        self.rows[host] = "down"

    def _row(self, host: str, state: str, updated: datetime.datetime) -> dict:
        return {"binary": self.binary, "host": host, "state": state, "status": "enabled",
                "updated_at": updated.replace(tzinfo=None).isoformat(), "zone": "nova"}  # fmt: skip

    def _body(self) -> dict:
        now = datetime.datetime.now(datetime.timezone.utc)
        services = []
        serving = "serving" in self.rows.values() and self.serving()
        for host, mode in self.rows.items():
            if mode == "serving" and serving:
                self.frozen_at[host] = now
            stamps = {"up": now, "down": self.down_at.get(host, now), "stale": self.stale_at,
                      "frozen": self.frozen_at.get(host, self.stale_at),
                      "serving": self.frozen_at.get(host, self.stale_at)}  # fmt: skip
            services.append(self._row(host, "down" if mode == "down" else "up", stamps[mode]))
        extra = [
            self._row(host, state, now - datetime.timedelta(seconds=age))
            for host, state, age in self.extra_rows
        ]
        return {"services": extra + services if self.extra_first else services + extra}

    def _handler(self) -> type:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.requests += 1
                for marker, mode in (("/capabilities/", lambda: fake.capabilities.get(self._host(), "ok")),
                                     ("/scheduler-stats/get_pools", lambda: fake.pools)):  # fmt: skip
                    if marker in self.path and self.headers.get("X-Auth-Token"):
                        fake.asked.append(self.path[self.path.index(marker) :])
                        return self._round_trip(mode())
                if "/clusters/detail" in self.path:
                    return self._clusters()
                if "/os-services" not in self.path:
                    return self._answer(404, {"error": "not found"})
                fake.os_services_requests += 1
                if fake.os_services_requests in fake.unavailable:
                    return self._answer(503, {"error": "fake: cinder-api moving"})
                if fake.status != 200:
                    return self._answer(fake.status, {"error": "fake"})
                return self._answer(200, fake._body())

            def _clusters(self) -> None:
                version = self.headers.get("OpenStack-API-Version", "")
                if version != "volume 3.7":  # what the agent asks; cinder has no /clusters before
                    return self._answer(404, {"itemNotFound": {"message": f"not with {version!r}"}})
                rows = [{"name": name, "binary": "cinder-volume", "num_hosts": hosts, "num_down_hosts": down,
                         "state": "down" if down == hosts else "up", "status": "enabled"}
                        for name, (hosts, down) in fake.clusters.items()]  # fmt: skip
                return self._answer(200, {"clusters": rows})

            def _host(self) -> str:
                return urllib.parse.unquote(self.path.rsplit("/", 1)[1])

            def _round_trip(self, mode: str) -> None:
                if mode == "hang":
                    fake._closing.wait(60)
                    return None
                if mode != "ok":
                    return self._answer(int(mode), {"computeFault": {"message": "fake RPC trouble"}})
                return self._answer(200, {"pools": [], "namespace": "OS::Storage::Capabilities::fake"})

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt: str, *args: object) -> None:
                pass

        return Handler


class FakeEtcd:
    """etcd's HTTP gateway as far as /health: health is "true", "false", or anything else to
    answer that HTTP status; close() is an outage."""

    def __init__(self) -> None:
        self.health = "true"
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/health":
                    status, body = 404, b"404 page not found"
                elif fake.health in ("true", "false"):
                    status, body = 200, json.dumps({"health": fake.health}).encode()
                else:
                    status, body = int(fake.health), b"{}"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
