"""Health check results and how a monitor turns them into an answer.

Exports: CheckResult, OK, DEGRADED, FAILED, PENDING, SKIPPED, Deadline, timed, verdict,
waiting_for.

A check says FAILED only about the service itself.  A dependency's outage (Keystone, the
broker) is DEGRADED: the monitor answers 0 and warns, because Pacemaker would restart every
healthy service in the cluster at once and the restart fixes nothing.  A service still within
its start grace (not connected, not reported yet) is PENDING: the monitor answers 0, start
keeps waiting.
"""

from __future__ import annotations

import time

from cinder_ocf.ocf import OcfExit

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Callable, List, Sequence, Tuple

OK = "ok"
DEGRADED = "degraded"  # answer 0 and warn: a dependency failed, or a fault still within its grace
FAILED = "failed"
PENDING = "pending"  # the service is still starting: the monitor answers 0, start waits
SKIPPED = "skipped"


class CheckResult:
    __slots__ = ("detail", "name", "seconds", "status")

    def __init__(self, name: str, status: str, detail: str, seconds: float = 0.0) -> None:
        self.name = name
        self.status = status
        self.detail = detail
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"CheckResult({self.name!r}, {self.status!r}, {self.detail!r})"


def timed(name: str, check: Callable[[], Tuple[str, str]]) -> CheckResult:
    started = time.monotonic()
    status, detail = check()
    return CheckResult(name, status, detail, time.monotonic() - started)


class Deadline:
    """The end of an action's time, a little before Pacemaker's operation timeout."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def cap(self, seconds: float) -> float:
        """seconds, or what is left of the action if that is less."""
        return min(seconds, self.remaining())


def verdict(results: Sequence[CheckResult]) -> Tuple[OcfExit, str, List[str]]:
    """(answer, reason of the first failure, warnings of degraded checks)."""
    warnings = [f"{r.name}: {r.detail}" for r in results if r.status == DEGRADED]
    for result in results:
        if result.status == FAILED:
            return OcfExit.ERR_GENERIC, result.detail, warnings
    return OcfExit.SUCCESS, "", warnings


def waiting_for(results: Sequence[CheckResult]) -> str:
    """What a start still waits for (the first PENDING check's detail), or ""."""
    for result in results:
        if result.status == PENDING:
            return f"{result.name}: {result.detail}"
    return ""
