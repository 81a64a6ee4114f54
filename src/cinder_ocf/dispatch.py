"""Turns an OCF invocation into an action call and its result into an exit code.

Exports: run.

The only place that decides exit codes for unexpected situations: library code raises
OcfError; anything else (a bug, an operation about to time out) becomes ERR_GENERIC with a
one-line reason, never a traceback on stderr where Pacemaker would show it.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from cinder_ocf.agents.base import Service
from cinder_ocf.log import Logger
from cinder_ocf.metadata import render_metadata, usage_text
from cinder_ocf.ocf import Environment, OcfError, OcfExit, ocf_version

if TYPE_CHECKING:
    from cinder_ocf.checks.context import Clock

ACTIONS = {"start": "start", "stop": "stop", "monitor": "monitor", "status": "status",
           "validate-all": "validate_all", "reload-agent": "reload_agent"}  # fmt: skip
# Bad parameter values answer 6 here; elsewhere they are logged and replaced by the default.
STRICT_ACTIONS = ("start", "validate-all", "reload-agent")
MAX_TIMEOUT_S = 86400.0 * 7  # more than any operation waits; setitimer overflows far above


class _OutOfTime(Exception):
    pass


def _out_of_time(_signum: int, _frame: FrameType | None) -> None:
    raise _OutOfTime()


def _without_dependency(env: Environment, missing: ImportError) -> OcfError:
    """What an action answers on a node where a dependency of the agent is missing: nothing of
    this resource can have been started here, so a probe finds it not running and a stop
    with no pid file has nothing to do; anything else is "not installed"."""
    reason = f"a dependency of the agent is not installed on this node ({missing})"
    if env.is_probe or env.action == "status":
        return OcfError(OcfExit.NOT_RUNNING, reason)
    pid = env.params.get("pid") or f"{env.rsctmp}/{env.instance}.pid"
    if env.action == "stop" and not os.path.lexists(pid):
        return OcfError(OcfExit.SUCCESS, reason + "; nothing was started here")
    return OcfError(OcfExit.ERR_INSTALLED, reason)


def run(
    service: Service,
    argv: Sequence[str],
    environ: Mapping[str, str],
    clock: Clock | None = None,
    fresh_process: bool = False,
) -> int:
    """The OCF action argv[1] of service; its exit code.  clock: the supervisor's (the real one
    unless a test moves time for what the agent measures).  fresh_process: this process was
    forked for the action, as Pacemaker's executor does, so the operation timeout counts from
    its start (the interpreter's start-up, a second on a loaded node, is already spent)."""
    spec = service.spec
    action = argv[1] if len(argv) > 1 else ""
    if action == "meta-data":
        sys.stdout.write(render_metadata(spec, ocf_version(environ)))
        return OcfExit.SUCCESS
    if action in ("usage", "help", "--help", "-h"):
        sys.stdout.write(usage_text(spec))
        return OcfExit.SUCCESS
    if action not in ACTIONS:
        sys.stderr.write(usage_text(spec))
        return OcfExit.ERR_ARGS if not action else OcfExit.ERR_UNIMPLEMENTED

    env = Environment(action, environ)
    log = Logger(f"{spec.name}({env.instance})", environ)
    timeout = min(env.timeout_s(spec.default_timeout(action)), MAX_TIMEOUT_S)
    # Last line of defence for a wait nothing else bounded: answer just before Pacemaker's
    # timeout instead of being killed without a word.
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.setitimer(signal.ITIMER_REAL, max(0.2, timeout - 0.3))
    try:
        # Here, not at the top: meta-data must work on a node without the runtime
        # dependencies (ocf-tester, `pcs resource describe`), and an action there must say so.
        try:
            from cinder_ocf.supervisor.lifecycle import Supervisor  # noqa: PLC0415
            from cinder_ocf.supervisor.processes import own_age  # noqa: PLC0415
        except ImportError as missing:
            raise _without_dependency(env, missing) from None
        spent = own_age() if fresh_process else 0.0
        if spent:
            signal.setitimer(signal.ITIMER_REAL, max(0.2, timeout - 0.3 - spent))
        supervisor = Supervisor(service, env, log, strict=action in STRICT_ACTIONS, clock=clock, spent=spent)
        code = getattr(supervisor, ACTIONS[action])()
    except OcfError as err:
        code = err.code
        if code in (OcfExit.SUCCESS, OcfExit.NOT_RUNNING):
            log.info(err.reason)
        elif code == OcfExit.DEGRADED:
            log.warning(err.reason)
        else:
            log.error(err.reason)
        if code != OcfExit.SUCCESS:
            log.exit_reason(err.reason)
    except _OutOfTime:
        code = OcfExit.ERR_GENERIC
        reason = f"{action} did not finish within its timeout of {timeout:g} s"
        log.error(reason)
        log.exit_reason(reason)
    except Exception as err:
        code = OcfExit.ERR_GENERIC
        log.error("internal error: " + " | ".join(traceback.format_exc().splitlines()[-6:]))
        log.exit_reason(f"internal error in {action}: {type(err).__name__}: {err}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return int(code)
