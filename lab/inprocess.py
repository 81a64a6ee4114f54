"""An agent action run inside the test's own process: the dispatch, no process at all.

For the agent's decisions on what it is given (parameters, cinder.conf, the pid file, the
environment, what the checks meet) where the action starts no daemon:
``cinder_ocf.dispatch.run`` is called with the action's argv and environment (os.environ too,
for the libraries that read it), its stdout and stderr captured (what this thread writes, and
the tracebacks of threads that die meanwhile; other threads' lines go where they went), the
test's working directory, argv and SIGALRM handler put back after.  What a process adds (its
exit status, its descriptors, signals) is tested with the other runners; a daemon started here
would be the test's own child, so actions that start one belong to runner "fork".  Only from
the main thread: dispatch arms SIGALRM.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, TextIO

from . import forked

if TYPE_CHECKING:
    from cinder_ocf.checks.context import Clock


def run(
    path: Path,
    argv: List[str],
    env: Dict[str, str],
    cwd: Optional[str] = None,
    clock: Optional[Clock] = None,
) -> subprocess.CompletedProcess[str]:
    """argv[1] of the agent at path, as forked.run answers it, in this process."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("an in-process action arms SIGALRM: only the main thread can run one")
    name = forked.agent_name(path)
    forked.preload()
    from cinder_ocf.agents import service  # noqa: PLC0415 - preloaded
    from cinder_ocf.dispatch import run as dispatch  # noqa: PLC0415

    saved_env = dict(os.environ)
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    saved_streams = sys.stdout, sys.stderr
    saved_hook = threading.excepthook
    saved_alarm = signal.getsignal(signal.SIGALRM)
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.clear()
        os.environ.update(env)
        sys.argv = list(argv)
        if cwd is not None:
            os.chdir(cwd)
        sys.stdout, sys.stderr = _Routed(out, saved_streams[0]), _Routed(err, saved_streams[1])
        threading.excepthook = lambda args: _report(args, err)
        code = dispatch(service(name), argv, os.environ, clock=clock)
    finally:
        threading.excepthook = saved_hook
        sys.stdout, sys.stderr = saved_streams
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if saved_alarm is None else saved_alarm)
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


class _Routed(io.TextIOBase):
    """sys.stdout or sys.stderr during the action: what the agent writes (this thread) is its
    output; what another thread of the test writes (a fake's server) goes where it went."""

    def __init__(self, capture: io.StringIO, elsewhere: TextIO) -> None:
        super().__init__()
        self.capture = capture
        self.elsewhere = elsewhere
        self.agent = threading.get_ident()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        target = self.capture if threading.get_ident() == self.agent else self.elsewhere
        return target.write(text)

    def flush(self) -> None:
        self.elsewhere.flush()


def _report(args: threading.ExceptHookArgs, err: io.StringIO) -> None:
    """A thread that dies of an exception during the action is the agent's (the fakes' threads
    catch theirs): its traceback is the agent's stderr, as the interpreter would print it."""
    name = args.thread.name if args.thread is not None else "?"
    err.write(f"Exception in thread {name}:\n")
    err.write("".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)))
