"""A cloud user's volumes through a failover: python-cinderclient, as a tenant, on the VIP.

Run inside the client namespace with the stack venv's Python (python-cinderclient is in
lab/stack/requirements.lock)::

    ip netns exec cocf-client STACK_VENV/bin/python volume_client.py --workers 2

The first line of stdin is the tenant's credentials as JSON (auth_url, username, password,
project_name, user_domain_name, project_domain_name): never on the command line.  Each worker
runs cycles back to back: create a 1 GiB volume, show it until it is available, extend it to
2 GiB, show it until available again, delete it, show it until it is gone.  A step that fails
ends its cycle; a volume it leaves is deleted at the end.  One JSON line per request on
stdout, in the order they complete::

    {"kind": "create", "sent": 12.3, "done": 12.5, "result": "ok", "volume": "<id>"}

result is "ok", "http:<status>" (cinder-api's or Keystone's answer) or the exception's class
name (ConnectFailure, ConnectTimeout, ...); a wait that ended with the volume in another
state adds {"kind": "state", ...} with result "error", "timeout:<status>", sent when the
wait began (the fault that left it came after that).  Times are
CLOCK_MONOTONIC, which the whole machine shares.  It stops after --duration seconds or
--cycles cycles, or when stdin closes or SIGTERM arrives; then it deletes what it made, and
writes one {"kind": "final", "volume": id, "result": <last status, or "deleted">} per volume.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from cinderclient import client as cinder_client
from cinderclient import exceptions as cinder_errors
from keystoneauth1 import exceptions as ks_errors
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

API_VERSION = "3.0"
POLL_S = 0.5
_print_lock = threading.Lock()


def emit(kind: str, sent: float, result: str, volume: Optional[str]) -> None:
    """One record, done now."""
    record = {"kind": kind, "sent": sent, "done": time.monotonic(), "result": result, "volume": volume}
    with _print_lock:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


def outcome(err: BaseException) -> str:
    """What the user was told: the HTTP status, else the exception's class name."""
    status = getattr(err, "code", None) or getattr(err, "http_status", None)
    if isinstance(status, int):
        return f"http:{status}"
    return type(err).__name__


class User:
    """One tenant's cinderclient and the volumes it made, with every request recorded."""

    def __init__(self, credentials: Dict[str, str], timeout: float) -> None:
        auth = v3.Password(
            auth_url=credentials["auth_url"],
            username=credentials["username"],
            password=credentials["password"],
            project_name=credentials["project_name"],
            user_domain_name=credentials.get("user_domain_name", "Default"),
            project_domain_name=credentials.get("project_domain_name", "Default"),
        )
        session = ks_session.Session(auth=auth, timeout=timeout)
        self.cinder = cinder_client.Client(API_VERSION, session=session, interface="public", retries=0)
        self.made: Dict[str, str] = {}  # volume id -> last status seen
        self._lock = threading.Lock()

    def call(self, kind: str, volume: Optional[str], do: Callable[[], Any]) -> Any:
        """do(), recorded; None when it failed."""
        sent = time.monotonic()
        try:
            answer = do()
        except (cinder_errors.ClientException, ks_errors.ClientException) as err:
            emit(kind, sent, outcome(err), volume)
            return None
        emit(kind, sent, "ok", volume)
        return answer if answer is not None else True

    def seen(self, volume: str, status: str) -> None:
        with self._lock:
            self.made[volume] = status

    def wait(self, volume: str, wanted: str, within: float, stop: threading.Event) -> bool:
        """Show the volume until its status is wanted ("gone": not found); False, with a state
        record, when it ended otherwise (error, or still transitional at `within`)."""
        began = time.monotonic()
        give_up = began + within
        status = "unknown"
        while time.monotonic() < give_up:
            sent = time.monotonic()
            try:
                status = self.cinder.volumes.get(volume).status
                result = "ok"
            except cinder_errors.NotFound:
                status, result = "gone", "ok"
            except (cinder_errors.ClientException, ks_errors.ClientException) as err:
                result = outcome(err)
            emit("show", sent, result, volume)
            if result == "ok":
                self.seen(volume, "deleted" if status == "gone" else status)
                if status == wanted:
                    return True
                if status in ("error", "error_extending", "error_deleting"):
                    break
            if stop.is_set() and wanted != "gone":
                return False  # stopping: the clean-up settles what is left
            time.sleep(POLL_S)
        emit("state", began, status if status.startswith("error") else f"timeout:{status}", volume)
        return False

    def cycle(self, n: int, stop: threading.Event, within: float) -> None:
        created = self.call("create", None, lambda: self.cinder.volumes.create(1, name=f"cocf-client-{n}"))
        if created is None:
            return
        volume = created.id
        self.seen(volume, created.status)
        if not self.wait(volume, "available", within, stop):
            return
        extended = self.call("extend", volume, lambda: self.cinder.volumes.extend(volume, 2))
        if extended is None or not self.wait(volume, "available", within, stop):
            return
        if self.call("delete", volume, lambda: self.cinder.volumes.delete(volume)) is not None:
            self.wait(volume, "gone", within, stop)

    def clean_up(self, within: float) -> None:
        """Delete every volume left (error ones included) once it settled, all within one
        budget of `within` seconds (stuck volumes must not add up), then say how each ended."""
        never = threading.Event()
        give_up = time.monotonic() + within

        def budget() -> float:
            return max(10.0, give_up - time.monotonic())  # a delete always gets a little time

        for volume in sorted(self.made):
            status = self.made[volume]
            if status == "deleted":
                continue
            settling = status != "available" and not status.startswith("error")
            if settling and give_up > time.monotonic():
                self.wait(volume, "available", give_up - time.monotonic(), never)
            # whatever the delete answered: a 404 says a worker's delete had already done it
            self.call("delete", volume, lambda v=volume: self.cinder.volumes.delete(v))
            self.wait(volume, "gone", budget(), never)
        for volume, status in sorted(self.made.items()):
            emit("final", time.monotonic(), status, volume)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="cycles running at once")
    parser.add_argument("--duration", type=float, default=1800, help="stop after this many seconds")
    parser.add_argument("--cycles", type=int, default=1000, help="stop after this many cycles in all")
    parser.add_argument("--timeout", type=float, default=10, help="seconds one request may take")
    parser.add_argument("--within", type=float, default=60, help="seconds a volume may take to settle")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between a worker's cycles")
    args = parser.parse_args(argv)

    user = User(json.loads(sys.stdin.readline()), args.timeout)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_stdin() -> None:
        while sys.stdin.buffer.read1(4096):
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    timer = threading.Timer(args.duration, stop.set)
    timer.daemon = True
    timer.start()
    counter = iter(range(args.cycles))
    counter_lock = threading.Lock()

    def worker() -> None:
        while not stop.is_set():
            with counter_lock:
                n = next(counter, None)
            if n is None:
                return
            user.cycle(n, stop, args.within)
            stop.wait(args.pause)

    workers = [threading.Thread(target=worker) for _ in range(args.workers)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    stop.set()
    user.clean_up(args.within)
    return 0


if __name__ == "__main__":
    sys.exit(main())
