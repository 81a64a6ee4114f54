"""An agent action run in a forked copy of this process instead of a freshly executed interpreter.

The child is a real process that Pacemaker's contract applies to: its own pid, exit status,
stdout and stderr (pipes read to the end, as subprocess reads them), the SIGALRM guard of
``cinder_ocf.dispatch.run``, and the daemons it starts are its children, reparented when it
exits, exactly as with the executable.  What it saves is the interpreter start-up and the
imports (100-150 ms an action): the child calls ``cinder_ocf.dispatch.run`` for the agent the
executable names, with argv and environ as Pacemaker passes them.

Forking a process that runs threads (the fakes serve from threads) is safe only if the child
takes no lock another thread might have held: it replaces stdin, stdout and stderr (and their
locks) with its own, closes every other descriptor, freezes the heap for the garbage collector
(no finaliser of the parent's objects runs in it), puts back what a fresh interpreter has
(signal handlers, warnings, hooks, os.environ, sys.argv) and leaves through os._exit, never
through the parent's atexit or pytest's clean-up.  logging reinitialises its own locks after a
fork; nothing else the agent uses is shared with the parent's threads.
"""

from __future__ import annotations

import gc
import importlib
import io
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

if TYPE_CHECKING:
    from cinder_ocf.checks.context import Clock

_SCRIPT_NAME = re.compile(r'^main\("([^"\\]+)"\)$', re.M)
# What the agents import lazily (dispatch, the agent modules, keystoneauth1 for a token,
# oslo.config for a changed cinder.conf): imported once here, not in every child.
_PRELOAD = [
    "cinder_ocf.dispatch",
    "cinder_ocf.agents.api",
    "cinder_ocf.agents.volume",
    "cinder_ocf.agents.scheduler",
    "cinder_ocf.agents.backup",
    "cinder_ocf.supervisor.lifecycle",
    "keystoneauth1.exceptions",
    "keystoneauth1.loading",
    "keystoneauth1.session",
    "oslo_config.cfg",
]
# A fresh interpreter's warning filters (python -W none, no PYTHONWARNINGS, not a dev build).
_FRESH_FILTERS: List[Tuple[str, type, str]] = [
    ("default", DeprecationWarning, "__main__"),
    ("ignore", DeprecationWarning, ""),
    ("ignore", PendingDeprecationWarning, ""),
    ("ignore", ImportWarning, ""),
    ("ignore", ResourceWarning, ""),
]
_preloaded = False


def agent_name(path: Path) -> str:
    """The agent a thin executable written by `cinder-ocf install-agents` runs (ValueError if
    path is not one: only those can be run in a fork)."""
    found = _SCRIPT_NAME.search(path.read_text(encoding="utf-8", errors="replace"))
    if found is None or not os.access(path, os.X_OK):
        raise ValueError(f"{path} is not an executable agent written by cinder-ocf install-agents")
    return found.group(1)


def preload() -> None:
    global _preloaded  # noqa: PLW0603 - once per process
    if not _preloaded:
        for module in _PRELOAD:
            importlib.import_module(module)
        _preloaded = True


def run(
    path: Path,
    argv: List[str],
    env: Dict[str, str],
    timeout_s: float,
    cwd: Optional[str] = None,
    clock: Optional[Clock] = None,
) -> subprocess.CompletedProcess[str]:
    """argv[1] of the agent at path, in a forked child with exactly env as its environment;
    as subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s) would
    answer (TimeoutExpired after the child was killed).  clock: what the agent's supervisor
    measures time with (the child's copy of it), the real clock unless given."""
    name = agent_name(path)
    preload()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        _child(name, argv, env, cwd, clock, out_w, err_w)
    os.close(out_w)
    os.close(err_w)
    chunks: Dict[int, List[bytes]] = {out_r: [], err_r: []}
    deadline = time.monotonic() + timeout_s
    timed_out = False
    with selectors.DefaultSelector() as selector:
        for fd in chunks:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in selector.select(left):
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fd].append(data)
                else:
                    selector.unregister(key.fd)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(out_r)
    os.close(err_r)
    stdout, stderr = (_text(b"".join(chunks[fd])) for fd in (out_r, err_r))
    if timed_out:
        raise subprocess.TimeoutExpired(argv, timeout_s, output=stdout, stderr=stderr)
    return subprocess.CompletedProcess(argv, os.waitstatus_to_exitcode(status), stdout, stderr)


def _text(data: bytes) -> str:
    """Decoded as subprocess's text mode decodes: the locale's encoding, universal newlines."""
    return io.TextIOWrapper(io.BytesIO(data)).read()


def _child(
    name: str,
    argv: List[str],
    env: Dict[str, str],
    cwd: Optional[str],
    clock: Optional[Clock],
    out_w: int,
    err_w: int,
) -> None:
    code = 1
    try:
        gc.freeze()  # the parent's objects stay as they are: none of their finalisers runs here
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the parent's sockets, pipes, capture files
        if cwd is not None:
            os.chdir(cwd)
        _fresh_interpreter(argv, env)
        from cinder_ocf.agents import service  # noqa: PLC0415 - preloaded in the parent
        from cinder_ocf.dispatch import run as dispatch  # noqa: PLC0415

        code = dispatch(service(name), argv, os.environ, clock=clock, fresh_process=True)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:
        try:
            traceback.print_exc()  # as an interpreter ends on an uncaught exception
        except BaseException:
            pass
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                code = 120  # what the interpreter answers when its last flush fails
        os._exit(code)


def _fresh_interpreter(argv: List[str], env: Dict[str, str]) -> None:
    """What the executable's own interpreter would have, in place of the parent's."""
    for signum in signal.valid_signals():
        try:
            handler = signal.getsignal(signum)
        except (OSError, ValueError):
            continue
        if callable(handler) and handler is not signal.default_int_handler:
            signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.set_wakeup_fd(-1)
    signal.setitimer(signal.ITIMER_REAL, 0)
    os.environ.clear()
    os.environ.update(env)
    # An interpreter started under Pacemaker's environment (no LANG: the C locale) coerces it to
    # C.UTF-8 (PEP 538, in its environment too) and is in UTF-8 mode: stdout with
    # surrogateescape, stderr with backslashreplace.
    if not any(env.get(name) for name in ("LC_ALL", "LC_CTYPE", "LANG")):
        os.environ["LC_CTYPE"] = "C.UTF-8"
    sys.argv = list(argv)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8", errors="surrogateescape")
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="surrogateescape"
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )
    sys.excepthook = sys.__excepthook__
    sys.unraisablehook = sys.__unraisablehook__
    # threading.__excepthook__ is 3.10+: on 3.9 the hook in place stays.
    threading.excepthook = getattr(threading, "__excepthook__", threading.excepthook)
    warnings.resetwarnings()
    for action, category, module in reversed(_FRESH_FILTERS):
        warnings.filterwarnings(action, category=category, module=module)  # type: ignore[arg-type]
    warnings.showwarning = _show_warning


def _show_warning(
    message: object, category: type, filename: str, lineno: int, file: object = None, line: object = None
) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))  # type: ignore[arg-type]
