"""An agent action run inside the test's own process: the dispatch, no process at all.

For the agent's decisions on what it is given (parameters, cinder.conf, the pid file, the
environment) where the action starts no daemon: ``cinder_ocf.dispatch.run`` is called with
the action's argv and environment (os.environ too, for the libraries that read it), its
stdout and stderr captured, the test's working directory, argv and SIGALRM handler put back
after.  What a process adds (its exit status, its descriptors, signals) is tested with the
other runners; a daemon started here would be the test's own child, so actions that start one
belong to runner "fork".  Only from the main thread: dispatch arms SIGALRM.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional

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
    saved_alarm = signal.getsignal(signal.SIGALRM)
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.clear()
        os.environ.update(env)
        sys.argv = list(argv)
        if cwd is not None:
            os.chdir(cwd)
        sys.stdout, sys.stderr = out, err
        code = dispatch(service(name), argv, os.environ, clock=clock)
    finally:
        sys.stdout, sys.stderr = saved_streams
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if saved_alarm is None else saved_alarm)
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
