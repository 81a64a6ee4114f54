"""The library's actions run in the test's own process, with a clock the test moves.

Where a test is about the agent's logic (grace periods, how long a fault has lasted) rather
than the OCF contract of its executable, it runs the action here: no interpreter start-up per
action and no sleep to wait out a grace period, since the clock's ``advance`` moves time for
everything the agent measures (its deadline, the age of the daemon's processes, how long a
broker connection has been missing).
"""

import io
import time
from dataclasses import dataclass
from typing import Dict, Optional

from cinder_ocf.agents import service
from cinder_ocf.log import Logger
from cinder_ocf.ocf import Environment, OcfError, OcfExit
from cinder_ocf.supervisor.lifecycle import Supervisor
from lab.resource import Agent


class FakeClock:
    """The real clock, plus however far the test has moved it; sleep moves it too."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def time(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        # A little real time too: the processes the agent waits for live on the real clock.
        time.sleep(min(max(seconds, 0.0), 0.01))
        self.offset += max(seconds, 0.0)


@dataclass
class Answer:
    code: int
    reason: str
    log: str

    @property
    def rc(self) -> int:
        return self.code


def act(
    agent: Agent,
    action: str,
    clock: FakeClock,
    interval_s: float = 10.0,
    timeout_s: float = 20.0,
    extra_env: Optional[Dict[str, str]] = None,
) -> Answer:
    """What the agent's action answers, run in this process with the given clock."""
    environ = agent.environment(action, timeout_s, interval_s)
    environ.update(extra_env or {})
    stream = io.StringIO()
    env = Environment(action, environ)
    log = Logger(f"{agent.path.name}({env.instance})", environ, stream=stream)
    supervisor = Supervisor(
        service(agent.path.name), env, log, strict=action in ("start", "validate-all"), clock=clock
    )
    method = supervisor.validate_all if action == "validate-all" else getattr(supervisor, action)
    try:
        code = int(method())
        reason = ""
    except OcfError as err:
        code, reason = int(err.code), err.reason
        if code != OcfExit.SUCCESS:
            log.exit_reason(reason)
    return Answer(code, reason, stream.getvalue())
