"""The depth-20 checks (OCF_CHECK_LEVEL=20): a round trip through the service itself, over the
RPC bus, asked through cinder-api.

Exports: backend_round_trips, scheduler_round_trip, api_rpc_bus.

cinder-api answers GET capabilities/{host@backend} with an RPC call to that backend's
cinder-volume (on the queue only the server of that host@backend consumes), and GET
scheduler-stats/get_pools with an RPC call to a cinder-scheduler.  A heartbeat goes to the
database from a timer and keeps coming from a process whose RPC server no longer consumes;
these round trips do not, so a backend that stopped answering is seen within check_timeout
instead of service_down_time.

No answer is blamed on the service only once something else is known to work: the round trips
run after the monitor's other checks found the service connected to the broker and cinder-api
answering, and an unanswered one is compared with another round trip through the same
cinder-api (get_pools for a backend, a backend's capabilities for a scheduler).  Answered, the
bus and cinder-api work and the service fails (1); unanswered too, the bus or cinder-api is at
fault and the service is degraded.
"""

from __future__ import annotations

from urllib.parse import quote

from cinder_ocf.checks import Status, check
from cinder_ocf.checks.api import api_base
from cinder_ocf.checks.context import Context
from cinder_ocf.checks.rpc import api_v3, os_services_rows, refused
from cinder_ocf.checks.service_host import transport
from cinder_ocf.checks.tokens import authenticated_get
from cinder_ocf.openstack import http, keystone, queues

_SKIP = "the round trip through the RPC bus is not checked"
GET_POOLS = "/scheduler-stats/get_pools"


def _v3(ctx: Context, token: keystone.Token) -> str:
    # cinder-api asks itself, the RPC services ask the API their checks use (url or catalog);
    # only the latter report to os-services.
    if ctx.service.os_services_binary:
        return api_v3(ctx, token)
    return f"{api_base(ctx)}/v3/{token.project_id}"


def _unanswered(ctx: Context, path: str) -> str:
    """Nothing when GET path of the v3 API answers 200, else what came instead.  Finding when
    the monitoring user cannot ask (no token: SKIPPED or DEGRADED; refused: DEGRADED)."""
    try:
        done = authenticated_get(ctx, lambda token: _v3(ctx, token) + path, _SKIP, _SKIP)
    except http.HttpError as err:
        if err.kind == "timeout":
            return f"no answer within {ctx.check_timeout():g} s"
        return err.message
    status = done.answer.status
    if status in (401, 403):
        raise refused(path, status, _SKIP)
    if status == 200:
        return ""
    # cinder's answer names the cause (RPCTimeout is 502, a remote error 500).
    return f"HTTP {status}: {done.answer.body[:200].decode('utf-8', 'replace').strip()}"


def _up(ctx: Context, binary: str) -> list[str]:
    """The hosts of binary up in os-services, asked of the same API as the round trips."""
    rows = os_services_rows(ctx, _SKIP, _SKIP, binary=binary, v3_of=lambda token: _v3(ctx, token))
    return [row["host"] for row in rows if row.get("state") == "up"]


def _capabilities(host: str) -> str:
    return f"/capabilities/{quote(host, safe='@')}"


@check("round-trip")
def backend_round_trips(ctx: Context) -> tuple[Status, str]:
    """Each backend (host@backend) answers get_capabilities (cinder-volume)."""
    hosts = ctx.facts.service_hosts
    silent = []
    for host in hosts:
        why = _unanswered(ctx, _capabilities(host))
        if why:
            silent.append(f"{host} ({why})")
    if not silent:
        return Status.OK, f"each backend answered get_capabilities over the RPC bus ({', '.join(hosts)})"
    control = _unanswered(ctx, GET_POOLS)
    if control:
        return Status.DEGRADED, (
            f"get_capabilities went unanswered by {'; '.join(silent)}, and get_pools by the "
            f"schedulers too ({control}): the RPC bus or cinder-api is at fault, not {ctx.name}"
        )
    return Status.FAILED, (
        f"{ctx.name} backend {'; '.join(silent)} does not answer get_capabilities over the RPC "
        f"bus, while a cinder-scheduler answers get_pools through the same cinder-api: the "
        f"backend process no longer serves requests"
    )


@check("round-trip")
def scheduler_round_trip(ctx: Context) -> tuple[Status, str]:
    """A cinder-scheduler answers get_pools; unanswered, this one is blamed only when it is the
    only consumer of the scheduler queue (else any of them may be the silent one)."""
    why = _unanswered(ctx, GET_POOLS)
    if not why:
        return Status.OK, "get_pools answered over the RPC bus"
    facts = ctx.facts
    queue = ctx.service.os_services_binary
    try:
        consumers = queues.consumer_counts(
            transport(ctx), facts.brokers, [[queue]], facts.tls, facts.ca_file, ctx.check_timeout()
        ).get(queue)
    except queues.QueueError as err:
        return Status.DEGRADED, (
            f"get_pools went unanswered ({why}), and the broker cannot say who listens to "
            f"{queue} ({err.message})"
        )
    if consumers is not None and consumers > 1:
        return Status.DEGRADED, (
            f"get_pools went unanswered ({why}); {consumers} schedulers consume {queue}, and the "
            f"round trip cannot tell which one is silent: judged by the heartbeat instead"
        )
    if not consumers:
        return Status.FAILED, (
            f"{ctx.name} does not answer get_pools over the RPC bus ({why}) and nothing consumes "
            f"queue {queue}, although it is connected to the broker"
        )
    control = _other_backend(ctx)
    if control:
        return Status.DEGRADED, (
            f"get_pools went unanswered ({why}), and {control}: the RPC bus or cinder-api is at "
            f"fault, not {ctx.name}"
        )
    return Status.FAILED, (
        f"{ctx.name}, the only consumer of queue {queue}, does not answer get_pools over the RPC "
        f"bus ({why}), while a cinder-volume answers get_capabilities through the same cinder-api"
    )


def _other_backend(ctx: Context) -> str:
    """Nothing when an up cinder-volume backend answers get_capabilities, else why none did."""
    up = _up(ctx, "cinder-volume")
    if not up:
        return "no cinder-volume is up to compare with"
    why = _unanswered(ctx, _capabilities(up[0]))
    return f"get_capabilities of {up[0]} went unanswered too ({why})" if why else ""


@check("rpc-bus")
def api_rpc_bus(ctx: Context) -> tuple[Status, str]:
    """cinder-api reaches a cinder-scheduler over the RPC bus.  Never 1: no request tells
    cinder-api's RPC trouble from the broker's or the schedulers', and restarting every
    cinder-api for those would fix nothing.  Not asked while no scheduler is up (a cluster's
    start runs cinder-api's first monitor before any scheduler)."""
    if not _up(ctx, "cinder-scheduler"):
        return Status.SKIPPED, "no cinder-scheduler is up in os-services to answer get_pools"
    why = _unanswered(ctx, GET_POOLS)
    if not why:
        return Status.OK, "get_pools answered over the RPC bus"
    return Status.DEGRADED, (
        f"cinder-api gets no answer from a cinder-scheduler over the RPC bus (get_pools: {why}): "
        f"requests that need the bus (creating, attaching, deleting volumes) fail"
    )
