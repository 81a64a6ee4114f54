"""A Keystone v3 token endpoint of the tests' own, for faults: down, 500, slow, rejecting.

The real Keystone runs in the integration tests; this one counts requests and misbehaves on
demand so that unit tests can show what the agent does in each case.
"""

import datetime
import http.server
import json
import threading
from pathlib import Path
from typing import Optional


class FakeKeystone:
    def __init__(self, tokens_file: Path, lifetime_s: float = 3600.0) -> None:
        self.tokens_file = tokens_file
        self.lifetime_s = lifetime_s
        # ok | error500 | reject401 | slow | drip (the answer a byte at a time) | bad-expires |
        # no-project | wrong-types | not-json (a 201 whose token body the agent cannot use)
        self.mode = "ok"
        self.volume_url = ""  # when set: the catalog's volumev3 endpoint (internal and public)
        self.token_requests = 0
        self.last_body: Optional[dict] = None
        self.stopped = threading.Event()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v3"

    def close(self) -> None:
        self.stopped.set()
        self._server.shutdown()
        self._server.server_close()

    def _catalog(self) -> list:
        if not self.volume_url:
            return []
        endpoints = [
            {"id": f"e-{interface}", "interface": interface, "region_id": "RegionOne",
             "region": "RegionOne", "url": f"{self.volume_url}/v3/p1"}
            for interface in ("internal", "public")
        ]  # fmt: skip
        return [{"id": "s1", "type": "volumev3", "name": "cinderv3", "endpoints": endpoints}]

    def _issue(self) -> str:
        token = f"fake-token-{self.token_requests}"
        with open(self.tokens_file, "a", encoding="utf-8") as out:
            out.write(token + "\n")
        return token

    def _handler(self) -> type:
        keystone = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                keystone.last_body = json.loads(self.rfile.read(length) or b"{}")
                keystone.token_requests += 1
                if keystone.mode == "slow":
                    # No answer for 30 s, long after the agent gave up: none at all (nor a
                    # token issued into a test's files, maybe removed by then).
                    keystone.stopped.wait(30)
                    return None
                if keystone.mode == "error500":
                    return self._answer(500, {"error": {"code": 500, "message": "fake"}})
                if keystone.mode == "reject401":
                    return self._answer(401, {"error": {"code": 401, "message": "bad password"}})
                if keystone.mode == "not-json":
                    return self._raw(201, b"<html>a proxy's error page</html>", keystone._issue())
                expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
                    seconds=keystone.lifetime_s
                )
                body = {
                    "token": {
                        "methods": ["password"],
                        "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
                        "issued_at": datetime.datetime.now(datetime.timezone.utc).strftime(
                            "%Y-%m-%dT%H:%M:%S.000000Z"
                        ),
                        "user": {"id": "u1", "name": "monitor", "domain": {"id": "default"}},
                        "project": {"id": "p1", "name": "admin", "domain": {"id": "default"}},
                        "catalog": keystone._catalog(),
                    }
                }
                token = body["token"]
                if keystone.mode == "bad-expires":
                    token["expires_at"] = "tomorrow at noon"
                elif keystone.mode == "no-project":
                    del token["project"]
                elif keystone.mode == "wrong-types":
                    token["project"] = ["p1"]
                    token["catalog"] = {"volumev3": "here"}
                    token["expires_at"] = 12345
                if keystone.mode == "drip":
                    return self._drip(201, body, keystone._issue())
                return self._answer(201, body, {"X-Subject-Token": keystone._issue()})

            def _raw(self, status: int, data: bytes, subject: str) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Subject-Token", subject)
                self.end_headers()
                self.wfile.write(data)

            def _drip(self, status: int, body: dict, subject: str) -> None:
                """The whole answer, status line included, a byte every 0.2 s: each read
                succeeds, so only a deadline on the whole request ends it."""
                data = json.dumps(body).encode()
                head = (
                    f"HTTP/1.1 {status} Created\r\nContent-Type: application/json\r\n"
                    f"X-Subject-Token: {subject}\r\nContent-Length: {len(data)}\r\n\r\n"
                ).encode()
                try:
                    for byte in head + data:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        if keystone.stopped.wait(0.2):
                            return
                except OSError:
                    pass
                self.close_connection = True

            def do_GET(self) -> None:
                if keystone.mode == "error500":  # failing as a whole, its version document too
                    self._answer(500, {"error": {"code": 500}})
                    return
                self._answer(200, {"version": {"id": "v3.14", "status": "stable"}})

            def _answer(self, status: int, body: dict, headers: Optional[dict] = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt: str, *args: object) -> None:
                pass

        return Handler
