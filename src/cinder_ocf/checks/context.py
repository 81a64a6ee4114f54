"""What a check is given: the clock, the deadline, the processes, cinder.conf's facts, tokens.

Exports: Context, Clock, SystemClock, Deadline.

Everything a check reads comes through the context, so that the library's logic can be tried
in-process with a clock and an environment of the test's choosing; nothing a check finds is
left on an object for another check to pick up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from cinder_ocf import trusted

if TYPE_CHECKING:
    from cinder_ocf.agents.base import Service
    from cinder_ocf.checks.tokens import Tokens
    from cinder_ocf.log import Logger
    from cinder_ocf.metadata import ParamValues
    from cinder_ocf.ocf import Environment
    from cinder_ocf.openstack.conf import CinderConfig
    from cinder_ocf.openstack.facts import Facts
    from cinder_ocf.supervisor.processes import ProcessView


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class Deadline:
    """The end of an action's time, a little before Pacemaker's operation timeout."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds
        self.end = clock.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - self.clock.monotonic())

    def expired(self) -> bool:
        return self.clock.monotonic() >= self.end

    def cap(self, seconds: float) -> float:
        """seconds, or what is left of the action if that is less."""
        return min(seconds, self.remaining())


class Context:
    """One action's view of one resource, handed to every check."""

    def __init__(
        self,
        *,
        service: Service,
        env: Environment,
        params: ParamValues,
        log: Logger,
        clock: Clock,
        deadline: Deadline,
        processes: ProcessView,
        tokens: Tokens,
        load_facts: Callable[[], Facts],
        load_config: Callable[[], CinderConfig],
        last_output: Callable[[], str],
        transport_url: Callable[[], str],
    ) -> None:
        self.service = service
        self.env = env
        self.params = params
        self.log = log
        self.clock = clock
        self.deadline = deadline
        self.processes = processes
        self.tokens = tokens
        self.load_facts = load_facts
        self.load_config = load_config
        self.last_output = last_output  # the daemon's last lines, for reasons
        # cinder.conf's transport_url (it holds the broker's password: never among the facts)
        self.transport_url = transport_url
        # In start: the backend processes seen so far (pid -> start ticks), to tell a child that
        # died during start from one that has not been forked yet.
        self.backends_seen: dict[int, int] = {}
        self._facts: Facts | None = None

    @property
    def name(self) -> str:
        return self.service.spec.name

    @property
    def starting(self) -> bool:
        return self.env.action == "start"

    @property
    def facts(self) -> Facts:
        """cinder.conf's facts for this agent, from the cache unless a watched input changed."""
        if self._facts is None:
            self._facts = self.load_facts()
        return self._facts

    def check_timeout(self) -> float:
        return self.deadline.cap(float(self.params.integer("check_timeout")))

    @property
    def grace(self) -> float:
        return float(self.params.integer("start_grace")) if self.service.spec.declares("start_grace") else 0.0

    def state_path(self, suffix: str) -> str:
        """A per-resource state file in HA_RSCTMP."""
        return trusted.state_path(self.env.rsctmp, self.env.instance, suffix)
