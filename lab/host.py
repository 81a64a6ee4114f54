"""What the lab needs of this machine: scratch directories, and its processes (through psutil).

psutil reads /proc; nothing here parses it by hand.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional

import psutil

_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def open_dir(prefix: str) -> Path:
    """A temp dir under /var/tmp that `nobody` and daemon users can traverse (mkdtemp is 0700);
    only root writes to it."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.chmod(0o755)
    return path


def process_state(pid: int) -> Optional[str]:
    """psutil's status of a live process ('running', 'sleeping', ...), None when gone or a zombie.

    kill -0 is not enough: a dead process waiting to be reaped must count as gone.
    """
    try:
        status = psutil.Process(pid).status()
    except psutil.Error:
        return None
    return None if status in _GONE else status


def pid_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    return process_state(pid) is not None


def children(pid: int, recursive: bool = False) -> List[int]:
    """The live (not zombie) children of pid, or all its live descendants; [] when it is gone."""
    try:
        found = psutil.Process(pid).children(recursive=recursive)
    except psutil.Error:
        return []
    return [child.pid for child in found if pid_alive(child.pid)]


def session_members(leader: int) -> List[int]:
    """Live processes of the session a daemon leads (a daemon's whole tree, orphans included)."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == leader and proc.status() not in _GONE:
                members.append(proc.pid)
        except (OSError, psutil.Error):
            continue  # gone meanwhile
    return members


def wait_until(predicate: Callable[[], object], timeout_s: float, step_s: float = 0.05) -> bool:
    """Call predicate until it holds, at most timeout_s; whether it held."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())
