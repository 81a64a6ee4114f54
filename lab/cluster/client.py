"""An API client that keeps calling one URL: what a user of the cloud sees during a failover.

Run inside a namespace of the test network (``ip netns exec cocf-client python client.py URL``).
Every ``--interval`` seconds it sends ``GET URL`` on a fresh connection, each request in a
thread of its own, so that a request hanging on a vanished address never delays the next
one: the gaps between answers measure the outage to about one interval.  One line per
request on stdout, in the order they complete::

    <sent> <done> <HTTP status or error:reason>

(times from CLOCK_MONOTONIC, which the whole machine shares, so the caller can put them
next to its own time.monotonic()).  It stops after ``--count`` requests, or when stdin
closes or SIGTERM arrives.  Stdlib only: it runs with any Python 3.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import sys
import threading
import time
import urllib.parse
from typing import List, Optional

_print_lock = threading.Lock()


def get(url: str, timeout: float) -> str:
    """GET url on a new connection: the HTTP status, or error:<why>."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/", headers={"Accept": "application/json"})
        response = conn.getresponse()
        response.read()
        return str(response.status)
    except OSError as err:  # refused, unreachable, timeout, reset
        return f"error:{type(err).__name__}"
    except http.client.HTTPException as err:
        return f"error:{type(err).__name__}"
    finally:
        conn.close()


def _one(url: str, timeout: float) -> None:
    sent = time.monotonic()
    result = get(url, timeout)
    with _print_lock:
        sys.stdout.write(f"{sent:.4f} {time.monotonic():.4f} {result}\n")
        sys.stdout.flush()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between requests")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds one request may take")
    parser.add_argument("--count", type=int, default=0, help="stop after this many (0: until stopped)")
    args = parser.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_stdin() -> None:
        while os.read(0, 4096):
            pass
        stop.set()

    if args.count == 0:
        threading.Thread(target=watch_stdin, daemon=True).start()
    threads = []
    next_at = time.monotonic()
    sent = 0
    while not stop.is_set() and (args.count == 0 or sent < args.count):
        thread = threading.Thread(target=_one, args=(args.url, args.timeout))
        thread.start()
        threads.append(thread)
        sent += 1
        threads = [t for t in threads if t.is_alive()]
        next_at += args.interval
        stop.wait(max(0.0, next_at - time.monotonic()))
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
