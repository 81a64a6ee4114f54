"""The power switch behind the lab's fence agent (fence_cocf.py): fencing as in production.

A production cluster with an active/passive cinder-volume runs with stonith-enabled=true:
before the survivor starts the lost node's services, a fence device makes sure the node is
off.  Here the nodes are PID namespaces, and the switch is a thread of the harness on the
host that listens on a Unix socket bound into every node: ``off NODE`` ends the node's PID
namespace (the harness's power cut, by the PID it holds), ``status NODE`` says ``on`` or
``off``, ``list`` names the nodes.  Every request is kept with its time, so a test can say
when fencing was done.
"""

from __future__ import annotations

import logging
import os
import shutil
import socketserver
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

log = logging.getLogger(__name__)

AGENT = Path(__file__).with_name("fence_cocf.py")
AGENT_NAME = "fence_cocf"
# Where a node sees the switch's socket (the directory is bound into each node's /run).
NODE_SOCKET_DIR = "/run/cocf-power"
SOCKET_NAME = "switch.sock"
DEVICE_ID = "fence-cocf"


@dataclass(frozen=True)
class FenceRequest:
    at: float  # time.monotonic() when the switch got it
    action: str
    node: str
    answer: str


class PowerSwitch:
    """Serve fence_cocf's requests for the nodes named, with the harness's own power cut."""

    def __init__(
        self,
        directory: Path,
        nodes: Sequence[str],
        *,
        is_on: Callable[[str], bool],
        power_off: Callable[[str], None],
    ) -> None:
        self.directory = directory
        self.nodes = list(nodes)
        self._is_on = is_on
        self._power_off = power_off
        self._requests: List[FenceRequest] = []
        self._lock = threading.Lock()
        self._server: Optional[socketserver.ThreadingUnixStreamServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def socket_path(self) -> Path:
        return self.directory / SOCKET_NAME

    def start(self) -> PowerSwitch:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)  # root's fencer only: a power switch is not for anyone
        if self.socket_path.exists():
            self.socket_path.unlink()
        switch = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(256).decode(errors="replace").strip()
                self.wfile.write(switch.answer(line).encode() + b"\n")

        self._server = socketserver.ThreadingUnixStreamServer(str(self.socket_path), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="power-switch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        shutil.rmtree(self.directory, ignore_errors=True)

    def answer(self, line: str) -> str:
        """One request: ``off NODE``, ``status NODE``, ``on NODE``, ``reboot NODE`` or ``list``."""
        action, _, node = line.partition(" ")
        try:
            reply = self._carry_out(action, node)
        except Exception as exc:  # the fencer must hear of it, and the harness keeps serving
            log.exception("power switch: %r failed", line)
            reply = f"error {type(exc).__name__}: {exc}"
        with self._lock:
            self._requests.append(FenceRequest(time.monotonic(), action, node, reply))
        log.info("power switch: %s -> %s", line, reply)
        return reply

    def _carry_out(self, action: str, node: str) -> str:
        if action == "list":
            return "ok " + " ".join(self.nodes)
        if node not in self.nodes:
            return f"error no such node {node!r}"
        if action == "status":
            return "on" if self._is_on(node) else "off"
        if action in ("off", "reboot"):
            if self._is_on(node):
                self._power_off(node)
            if action == "reboot":  # the harness boots nodes, not the switch
                return "error powered off, but this switch cannot power a node on"
            return "ok"
        if action == "on":
            return "error this switch cannot power a node on: the harness boots nodes"
        return f"error unknown action {action!r}"

    def requests(self, action: Optional[str] = None, node: Optional[str] = None) -> List[FenceRequest]:
        with self._lock:
            return [
                r
                for r in self._requests
                if (action is None or r.action == action) and (node is None or r.node == node)
            ]

    def fenced_since(self, node: str, since: float) -> Optional[FenceRequest]:
        """The first successful ``off`` of node at or after since (monotonic), if any."""
        done = [r for r in self.requests("off", node) if r.at >= since and r.answer == "ok"]
        return done[0] if done else None
