"""A stand-in daemon for faults real cinder-api cannot be made to show on demand.

Started by the agent exactly like cinder-api (``--config-file FILE``), it reads its listen
address from [DEFAULT] like cinder and its behaviour from a [fake] section:

  mode = ok | error500 | hang | die | reject403 | garbage
  die_output = what it prints before it dies in mode die (Python escapes: \n, \x1b ...)
  start_delay = seconds before it listens (a slow start)
  workers = number of child processes (cinder-api's API workers)
  ignore_term = yes: the parent and its workers ignore SIGTERM
  zombie = yes: the parent forks a child that exits at once and is never reaped (a zombie)
  tokens_file = file listing the tokens it accepts, one per line (re-read per request)
  rpc = ok | hang | <HTTP status>: how GET .../scheduler-stats/get_pools, the request cinder-api
        passes to a scheduler over the RPC bus, is answered (re-read per request)
  scheduler = up | down | none: the cinder-scheduler row of os-services (re-read per request)

It stops on SIGTERM (unless told not to), taking its workers with it, as oslo.service does.
"""

import codecs
import configparser
import http.server
import json
import os
import signal
import sys
import time


def config_file() -> str:  # also in the other fake: each runs as a standalone script
    """--config-file FILE or --config-file=FILE, as oslo.config takes it; without one, the
    default oslo.config finds first for cinder: ~/.cinder/cinder.conf, then /etc/cinder."""
    for index, arg in enumerate(sys.argv):
        if arg == "--config-file" and index + 1 < len(sys.argv):
            return sys.argv[index + 1]
        if arg.startswith("--config-file="):
            return arg.split("=", 1)[1]
    home = os.path.expanduser("~/.cinder/cinder.conf")
    return home if os.path.exists(home) else "/etc/cinder/cinder.conf"


def main() -> None:
    conf = configparser.ConfigParser()
    conf.read(config_file())
    fake = conf["fake"] if conf.has_section("fake") else {}
    mode = fake.get("mode", "ok")
    print(f"fake cinder-api starting, mode {mode}, uid {os.getuid()}", flush=True)
    if mode == "die":
        said = fake.get("die_output", "ERROR cinder.cmd.api: cannot load app: fake failure for the tests")
        print(codecs.decode(said, "unicode_escape"), flush=True)
        sys.exit(3)
    time.sleep(float(fake.get("start_delay", "0")))
    if fake.get("ignore_term", "no") == "yes":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for _ in range(int(fake.get("workers", "0"))):
        if os.fork() == 0:
            while True:
                time.sleep(60)
    if fake.get("zombie", "no") == "yes" and os.fork() == 0:
        os._exit(0)  # never waited for: it stays a zombie while the parent lives
    handler = make_handler(mode, fake.get("tokens_file", ""))
    host = conf.get("DEFAULT", "osapi_volume_listen", fallback="127.0.0.1")
    port = conf.getint("DEFAULT", "osapi_volume_listen_port", fallback=8776)
    server = http.server.ThreadingHTTPServer((host, port), handler)
    if fake.get("ignore_term", "no") != "yes":
        signal.signal(signal.SIGTERM, lambda *_: terminate())
    server.serve_forever()


def terminate() -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)


def fake_option(name: str, default: str) -> str:
    """An option of the [fake] section as the file says now (for those re-read per request)."""
    conf = configparser.ConfigParser()
    conf.read(config_file())
    return conf.get("fake", name, fallback=default)


def make_handler(mode: str, tokens_file: str) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if mode == "hang":
                time.sleep(3600)
            if mode == "error500":
                return self.answer(500, b'{"error": "fake"}')
            if mode == "garbage":
                self.wfile.write(b"SSH-2.0-not-http\r\n\r\n")
                return None
            if self.path == "/":
                return self.answer(300, b'{"versions": []}')
            token = self.headers.get("X-Auth-Token", "")
            if mode == "reject403" and token:
                return self.answer(403, b'{"error": "forbidden"}')
            if token and token in accepted(tokens_file):
                if "/scheduler-stats/get_pools" in self.path:
                    return self.round_trip()
                if "/os-services" in self.path:
                    return self.services()
                return self.answer(200, b'{"volume_types": []}')
            return self.answer(401, b'{"error": "unauthorized"}')

        def services(self) -> None:
            state = fake_option("scheduler", "up")
            row = {"binary": "cinder-scheduler", "host": "cluster", "state": state}
            rows = [] if state == "none" else [row]
            return self.answer(200, json.dumps({"services": rows}).encode())

        def round_trip(self) -> None:
            rpc = fake_option("rpc", "ok")
            if rpc == "hang":
                time.sleep(3600)
            if rpc != "ok":
                return self.answer(int(rpc), b'{"computeFault": {"message": "fake RPC trouble"}}')
            return self.answer(200, b'{"pools": []}')

        def answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: object) -> None:
            print("fake cinder-api: " + fmt % args, flush=True)

    return Handler


def accepted(tokens_file: str) -> set:
    try:
        with open(tokens_file, encoding="utf-8") as src:
            return {line.strip() for line in src if line.strip()}
    except OSError:
        return set()


if __name__ == "__main__":
    main()
