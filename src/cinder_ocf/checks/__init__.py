"""Health checks: small functions over an explicit context, and how a monitor judges them.

Exports: Status, CheckResult, Finding, Check, check, run_checks, verdict, waiting_for.

A check says FAILED only about the service itself.  A dependency's outage (Keystone, the
broker) is DEGRADED: the monitor answers 0 and warns, because Pacemaker would restart every
healthy service in the cluster at once and the restart fixes nothing.  A service still within
its start grace (not connected, not reported yet) is PENDING: the monitor answers 0, start
keeps waiting.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from cinder_ocf.ocf import OcfExit

if TYPE_CHECKING:
    from cinder_ocf.checks.context import Context


class Status(enum.Enum):
    OK = "ok"
    DEGRADED = "degraded"  # answer 0 and warn: a dependency failed, or a fault within its grace
    FAILED = "failed"
    PENDING = "pending"  # the service is still starting: the monitor answers 0, start waits
    SKIPPED = "skipped"


class CheckResult(NamedTuple):
    name: str
    status: Status
    detail: str
    seconds: float = 0.0


class Finding(Exception):
    """Raised anywhere inside a check: the check ends with this status and detail."""

    def __init__(self, status: Status, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


Check = Callable[["Context"], CheckResult]


def check(name: str) -> Callable[[Callable[[Context], tuple[Status, str]]], Check]:
    """Make a function (context) -> (status, detail) a named, timed check."""

    def wrap(body: Callable[[Context], tuple[Status, str]]) -> Check:
        @functools.wraps(body)
        def run(ctx: Context) -> CheckResult:
            started = ctx.clock.monotonic()
            try:
                status, detail = body(ctx)
            except Finding as found:
                status, detail = found.status, found.detail
            return CheckResult(name, status, detail, ctx.clock.monotonic() - started)

        return run

    return wrap


def run_checks(ctx: Context, checks: Sequence[Check]) -> list[CheckResult]:
    """The checks in order, cheapest first, up to the first that fails."""
    results: list[CheckResult] = []
    for each in checks:
        results.append(each(ctx))
        if results[-1].status is Status.FAILED:
            break
    return results


def verdict(results: Sequence[CheckResult]) -> tuple[OcfExit, str, list[str]]:
    """(answer, reason of the first failure, warnings of degraded checks)."""
    warnings = [f"{r.name}: {r.detail}" for r in results if r.status is Status.DEGRADED]
    for result in results:
        if result.status is Status.FAILED:
            return OcfExit.ERR_GENERIC, result.detail, warnings
    return OcfExit.SUCCESS, "", warnings


def waiting_for(results: Sequence[CheckResult]) -> str:
    """What a start still waits for (the first PENDING check's detail), or ""."""
    for result in results:
        if result.status is Status.PENDING:
            return f"{result.name}: {result.detail}"
    return ""
