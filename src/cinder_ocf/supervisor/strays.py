"""Copies of the resource's daemon that the agent did not start: a systemd unit left enabled,
an operator's `cinder-volume &`, a package upgrade's restart.

Exports: Stray, find_strays, config_set.

A process is a copy of this resource when its command line runs the resource's binary with
the same --config-file / --config-dir set as the agent starts it with (without either, the
files oslo.config finds by itself).  Another binary, another configuration or another
resource's configuration is not: such processes are never touched.  Only the top of a copy
counts; its own children (cinder-volume's backend processes) go with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import NamedTuple

import psutil

from cinder_ocf.openstack.conf import config_options
from cinder_ocf.supervisor import processes
from cinder_ocf.supervisor.processes import ProcessIdentity

ConfigSet = tuple[frozenset[str], frozenset[str]]
# The files oslo.config reads for a daemon named prog given no --config-file (project cinder).
DefaultSources = Callable[[str], tuple[list[str], list[str]]]

_INTERPRETER_OPTIONS = {"-s", "-S", "-u", "-E", "-I", "-B", "-O", "-OO", "-b", "-bb"}


class Stray(NamedTuple):
    """One copy of the daemon running outside the agent's pid file."""

    identity: ProcessIdentity
    command: str
    user: str
    parent: str  # the process that started it, as an operator would recognise it
    unit: str  # its systemd unit, or ""

    def describe(self, age_s: float) -> str:
        how = f"systemd unit {self.unit}" if self.unit else f"{self.parent}"
        return (
            f"pid {self.identity.pid} (user {self.user}, started {age_s:.0f} s ago by {how}): "
            f"{self.command[:200]}"
        )


def _real(path: str, cwd: str) -> str:
    return os.path.realpath(os.path.join(cwd, path))


def _script_args(cmdline: list[str], binary: str, cwd: str) -> list[str] | None:
    """The arguments after binary on a command line that runs it, directly or through an
    interpreter (a Python script's command line starts with its interpreter); None if it
    does not run binary."""
    for index, arg in enumerate(cmdline[:4]):
        if index > 0 and arg in _INTERPRETER_OPTIONS:
            continue
        if os.path.basename(arg) == os.path.basename(binary) and _real(arg, cwd) == binary:
            return cmdline[index + 1 :]
        if index > 0 and not arg.startswith("-"):
            return None  # the interpreter runs another script
    return None


def config_set(files: Sequence[str], dirs: Sequence[str], cwd: str) -> ConfigSet:
    """The config files and directories, as real paths (relative ones taken from cwd)."""
    return frozenset(_real(f, cwd) for f in files), frozenset(_real(d, cwd) for d in dirs)


def _config_set(args: Sequence[str], cwd: str, prog: str, defaults: DefaultSources) -> ConfigSet:
    files, dirs = config_options(args)
    if not files and not dirs:
        files, dirs = defaults(prog)
    return config_set(files, dirs, cwd)


def _origin(proc: psutil.Process) -> tuple[str, str]:
    """(the parent, as 'name (pid N)'; the systemd unit or "")."""
    try:
        parent = proc.parent()
        described = f"{parent.name()} (pid {parent.pid})" if parent is not None else "no parent"
    except psutil.Error:
        described = "a parent that is gone"
    return described, _systemd_unit(proc.pid)


def _systemd_unit(pid: int) -> str:
    # psutil has no cgroup reader: the unit is the cgroup path's last *.service component.
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as src:
            lines = src.read().splitlines()
    except OSError:
        return ""
    for line in lines:
        path = line.split(":", 2)[-1]
        units = [part for part in path.split("/") if part.endswith(".service")]
        if units and not units[-1].startswith(("user@", "session-")):
            return units[-1]
    return ""


def find_strays(
    binary: str,
    sources: ConfigSet,
    ours: ProcessIdentity | None,
    defaults: DefaultSources,
) -> list[Stray]:
    """Copies of binary (a real path) with the config set sources that are not of the tree
    ours leads.  The process table is read once."""
    prog = os.path.basename(binary)
    matched: dict[int, psutil.Process] = {}
    parents: dict[int, int] = {}
    # The command line alone first (a zombie's is empty): most processes run something else,
    # and what else is read (a second parse of /proc/PID/stat each) is read for the few left.
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"]
        if not cmdline or not any(os.path.basename(arg) == prog for arg in cmdline[:4]):
            continue
        try:
            if ours is not None and _of_tree(proc, ours):
                continue  # first: the cheapest test, and true of every backend process of ours
            with proc.oneshot():
                if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                    continue
                parent_pid = proc.ppid()
            cwd = proc.cwd()
            args = _script_args(cmdline, binary, cwd)
            if args is None or _config_set(args, cwd, prog, defaults) != sources:
                continue
        except psutil.Error:
            continue
        matched[proc.pid] = proc
        parents[proc.pid] = parent_pid
    found = []
    for pid, proc in sorted(matched.items()):
        if parents[pid] in matched:
            continue  # a child of a copy (a backend process): it goes with its parent
        identity = processes.identity_of(pid)
        if identity is None:
            continue
        try:
            user = proc.username()
        except (psutil.Error, KeyError):
            user = "?"
        parent, unit = _origin(proc)
        found.append(Stray(identity, " ".join(proc.info["cmdline"]), user, parent, unit))
    return found


def _of_tree(proc: psutil.Process, ours: ProcessIdentity) -> bool:
    """proc belongs to the tree the agent started: the daemon runs in a session of its own,
    which its children keep; a session younger than the leader is someone else's."""
    try:
        return os.getsid(proc.pid) == ours.pid and processes.start_ticks(proc.pid) >= ours.start_ticks
    except (OSError, psutil.Error):
        return False
