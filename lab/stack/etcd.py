"""A private single-member etcd (Debian's etcd-server) for cinder's [coordination]: the lock
manager an active/active cinder-volume needs (tooz's etcd3gw driver, etcd3+http://).

Its client port on the stack's address, its peer port on the namespace's loopback; the data
in a directory only the service user enters.  Stdlib only, like the rest of lab/stack.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import List

ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class Etcd:
    """The command line and health of one etcd under *directory*, answering on *host*."""

    def __init__(self, directory: Path, host: str) -> None:
        self.directory = directory
        self.host = host

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_file(self) -> Path:
        return self.directory / "etcd.log"

    @property
    def client_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{ETCD_CLIENT_PORT}"

    @property
    def backend_url(self) -> str:
        """cinder.conf [coordination] backend_url for tooz's etcd3gw driver."""
        return "etcd3+" + self.client_url

    def server_argv(self) -> List[str]:
        binary = shutil.which("etcd", path=SYSTEM_PATH)
        if binary is None:
            raise RuntimeError("no etcd on this machine (Debian package etcd-server)")
        peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"
        return [
            binary, "--name", "lab", "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url, "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"lab={peer}", "--initial-cluster-state", "new",
        ]  # fmt: skip

    def healthy(self, timeout: float = 2.0) -> bool:
        """etcd's own word: GET /health answers {"health": "true"}."""
        try:
            with urllib.request.urlopen(f"{self.client_url}/health", timeout=timeout) as answer:
                return bool(json.loads(answer.read()).get("health") == "true")
        except (OSError, ValueError, urllib.error.URLError):
            return False
