"""Turns an OCF invocation into an action call and its result into an exit code.

Exports: run.

The only place that decides exit codes for unexpected situations: library code raises
OcfError; anything else (a bug, an operation about to time out) becomes ERR_GENERIC with a
one-line reason, never a traceback on stderr where Pacemaker would show it.
"""

from __future__ import annotations

import sys

from cinder_ocf.metadata import render_metadata, usage_text
from cinder_ocf.ocf import Environment, Logger, OcfError, OcfExit

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    import signal as _signal
    from typing import Any, List, Mapping, Type

    from cinder_ocf.daemon import DaemonAgent
else:
    # The C half of the signal module: signal itself builds enums (~3 ms per monitor).
    import _signal

ACTIONS = {"start": "start", "stop": "stop", "monitor": "monitor", "status": "status",
           "validate-all": "validate_all"}  # fmt: skip
STRICT_ACTIONS = ("start", "validate-all")


class _OutOfTime(Exception):
    pass


def _out_of_time(_signum: int, _frame: Any) -> None:
    raise _OutOfTime()


def run(agent_class: Type[DaemonAgent], argv: List[str], environ: Mapping[str, str]) -> int:
    spec = agent_class.spec
    action = argv[1] if len(argv) > 1 else ""
    if action == "meta-data":
        sys.stdout.write(render_metadata(spec))
        return OcfExit.SUCCESS
    if action in ("usage", "help", "--help", "-h"):
        sys.stdout.write(usage_text(spec))
        return OcfExit.SUCCESS
    if action not in ACTIONS:
        sys.stderr.write(usage_text(spec))
        return OcfExit.ERR_ARGS if not action else OcfExit.ERR_UNIMPLEMENTED

    env = Environment(action, environ)
    log = Logger(f"{spec.name}({env.instance})", environ)
    timeout = env.timeout_s(spec.default_timeout(action))
    # Last line of defence for a wait nothing else bounded: answer just before Pacemaker's
    # timeout instead of being killed without a word.
    _signal.signal(_signal.SIGALRM, _out_of_time)
    _signal.setitimer(_signal.ITIMER_REAL, max(0.2, timeout - 0.3))
    try:
        agent = agent_class(env, log, strict=action in STRICT_ACTIONS)
        code = getattr(agent, ACTIONS[action])()
    except OcfError as err:
        code = err.code
        log.log("err" if code != OcfExit.NOT_RUNNING else "info", err.reason)
        log.exit_reason(err.reason)
    except _OutOfTime:
        code = OcfExit.ERR_GENERIC
        reason = f"{action} did not finish within its timeout of {timeout:g} s"
        log.error(reason)
        log.exit_reason(reason)
    except Exception as err:
        import traceback  # noqa: PLC0415

        code = OcfExit.ERR_GENERIC
        log.error("internal error: " + " | ".join(traceback.format_exc().splitlines()[-6:]))
        log.exit_reason(f"internal error in {action}: {type(err).__name__}: {err}")
    finally:
        _signal.setitimer(_signal.ITIMER_REAL, 0)
    return int(code)
