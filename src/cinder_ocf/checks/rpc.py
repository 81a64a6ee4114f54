"""The checks of the services that work through the message broker and report a heartbeat to
the database: cinder-volume, cinder-scheduler, cinder-backup.

Exports: service_processes, backend_processes, amqp_any, amqp_each_backend, heartbeat,
os_services_rows, latest_by_host, api_v3, refused, row_updated, give_up_after_grace,
RESPAWN_WAIT_S.

1. processes: the leader is ours (the supervisor's status); cinder-volume also has one live
   child per enabled backend.  oslo.service respawns a backend child that dies (~0.5 s here):
   a missing child is looked for again for RESPAWN_WAIT_S before it counts as gone.
2. amqp: each process that should talk to the broker (each backend child of cinder-volume,
   any process of the tree for the others) holds an ESTABLISHED TCP connection to an address
   of transport_url.  Not connected past the grace: if no broker address accepts a connection
   from this node it is the broker's outage (0 and a warning); if one does, the service is
   sick (1).
3. heartbeat (with credentials): the service's rows in cinder-api's os-services are `up`, and
   were updated since the process started (of a host's rows, the one updated last).
   cinder-api or Keystone failing is DEGRADED.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from cinder_ocf import trusted
from cinder_ocf.checks import Finding, Status, check
from cinder_ocf.checks.context import Context
from cinder_ocf.checks.tokens import authenticated_get
from cinder_ocf.ocf import OcfError, OcfExit
from cinder_ocf.openstack import broker, http, keystone

if TYPE_CHECKING:
    import psutil

V3Of = Callable[[keystone.Token], str]  # a token -> the block-storage v3 base to ask
RESPAWN_WAIT_S = 2.0  # oslo.service replaces a dead backend child in ~0.5 s here
# After its longest pause between reconnection attempts, a service still needs to connect and
# redeclare its queues: seconds on a loaded node.
RECONNECT_SLACK_S = 5.0
_POLL_S = 0.1


# ---------------------------------------------------------------- processes
@check("processes")
def service_processes(ctx: Context) -> tuple[Status, str]:
    view = ctx.processes
    return Status.OK, f"process {view.leader.pid} runs ({len(view.members)} in its tree)"


@check("processes")
def backend_processes(ctx: Context) -> tuple[Status, str]:
    """One live child per enabled backend (cinder-volume)."""
    view = ctx.processes
    leader = view.leader.pid
    backends = ctx.facts.backends
    children = view.forks()
    if ctx.starting:
        _notice_child_deaths(ctx, children)
        if len(ctx.backends_seen) < len(backends) and len(children) < len(backends):
            status = Status.FAILED if view.leader_age() >= ctx.grace else Status.PENDING
            return status, (
                f"{len(children)} of {len(backends)} backend processes started so far "
                f"(one per enabled backend: {', '.join(backends)})"
            )
    if len(children) < len(backends):
        children = _wait_for_respawn(ctx, len(backends))
        if not view.running:
            return Status.FAILED, f"{ctx.name} parent process {leader} died during the check"
    pids = " ".join(str(proc.pid) for proc in children)
    if len(children) < len(backends):
        return Status.FAILED, (
            f"only {len(children)} of {len(backends)} {ctx.name} backend processes run "
            f"(one per enabled backend: {', '.join(backends)}; running: {pids or 'none'}); "
            f"the parent {leader} did not replace the missing one within {RESPAWN_WAIT_S:g} s"
        )
    return Status.OK, f"parent {leader} and {len(children)} backend processes ({pids})"


def _notice_child_deaths(ctx: Context, children: list[psutil.Process]) -> None:
    """In start, a backend child that dies is a failed start: its output says why."""
    alive = ctx.processes.start_ticks_of(children)
    for pid, ticks in list(ctx.backends_seen.items()):
        if alive.get(pid) == ticks:
            continue
        if ctx.processes.still_runs(pid, ticks):
            # Seen between its fork and its exec (a starved node can take longer than
            # FORK_SETTLE_S): a helper program, not a backend process.
            del ctx.backends_seen[pid]
            continue
        raise OcfError(
            OcfExit.ERR_GENERIC,
            f"{ctx.name} backend process {pid} died during start; {ctx.last_output()}",
        )
    ctx.backends_seen.update(alive)


def _wait_for_respawn(ctx: Context, expected: int) -> list[psutil.Process]:
    view = ctx.processes
    end = ctx.clock.monotonic() + ctx.deadline.cap(RESPAWN_WAIT_S)
    while True:
        view.refresh()
        children = view.forks()
        if len(children) >= expected or not view.running or ctx.clock.monotonic() >= end:
            if len(children) >= expected:
                ctx.log.info(f"a missing backend process of {ctx.name} was replaced by the parent")
            return children
        ctx.clock.sleep(_POLL_S)


def give_up_after_grace(ctx: Context, reason: str) -> None:
    """In start, a check still failing once the grace is over will not heal by waiting."""
    age = ctx.processes.leader_age()
    if age >= ctx.grace:
        raise OcfError(
            OcfExit.ERR_GENERIC,
            f"{ctx.name} is not healthy {age:.0f} s after it started (start_grace "
            f"{ctx.grace:g} s): {reason}; {ctx.last_output()}",
        )


# ---------------------------------------------------------------- AMQP
@check("amqp")
def amqp_any(ctx: Context) -> tuple[Status, str]:
    """At least one process of the tree holds a broker connection (the leader, if it has none)."""
    return _amqp(ctx, ctx.processes.members, each=False)


@check("amqp")
def amqp_each_backend(ctx: Context) -> tuple[Status, str]:
    """Every backend child holds a broker connection (cinder-volume)."""
    return _amqp(ctx, ctx.processes.forks(), each=True)


def _format(endpoints: Any) -> str:
    return ", ".join(broker.format_hostport(h, p) for h, p in endpoints)


def _amqp(ctx: Context, talkers: list[psutil.Process], each: bool) -> tuple[Status, str]:
    facts = ctx.facts
    if facts.amqp_skip:
        return Status.SKIPPED, facts.amqp_skip
    addresses = set(facts.addresses)
    # The IPv4 table alone while every broker address is IPv4: the kernel walks all of its
    # connections for each table it lists (~4 ms a table on a controller).
    kind = "tcp4" if all(":" not in ip for ip, _ in addresses) else "tcp"
    peers = ctx.processes.peers(talkers, kind)
    if peers is None:
        return Status.SKIPPED, "not allowed to read the connections of other processes"
    # Ended since the process scan: a missing backend child is the process check's business
    # at the next monitor, a short-lived helper nobody's.
    talkers = [proc for proc in talkers if proc.is_running()]
    if not talkers:
        return Status.PENDING, "the processes to check ended during the check; checked again next time"

    def connected_to(known: set[broker.Endpoint], seen: dict[int, set[broker.Endpoint]]) -> set[int]:
        return {proc.pid for proc in talkers if seen.get(proc.pid, set()) & known}

    def enough(connected: set[int]) -> bool:
        return len(connected) == len(talkers) if each else bool(connected)

    connected = connected_to(addresses, peers)
    if not enough(connected):
        # The cached addresses may be stale, and an IPv6 socket's connection to an IPv4 broker
        # (::ffff:a.b.c.d) is listed in the IPv6 table only: both looked at again.
        fresh, problems = broker.resolve(facts.brokers)
        for problem in problems:
            ctx.log.warning(f"cannot resolve broker host {problem}")
        addresses = fresh
        if kind != "tcp":
            peers = ctx.processes.peers(talkers, "tcp") or peers
        connected = connected_to(addresses, peers)
    if enough(connected):
        trusted.remove(ctx.state_path("amqp"))
        links = sorted({broker.format_hostport(*p) for pid in connected for p in peers[pid] & addresses})
        who = "each backend process" if each else f"{len(connected)} process(es)"
        return Status.OK, f"{who} connected to the broker ({', '.join(links)})"
    missing = [proc for proc in talkers if proc.pid not in connected]
    if not each:
        missing = [proc for proc in talkers if proc.pid == ctx.processes.leader.pid] or missing
    ages = {proc.pid: ctx.processes.age_of(proc) for proc in missing}
    overdue = [pid for pid, age in ages.items() if age >= ctx.grace]
    pids = ", ".join(str(proc.pid) for proc in missing)
    if each:
        what, holds = (f"{ctx.name} backend processes {pids}", "have") if len(missing) > 1 else (
            f"{ctx.name} backend process {pids}", "has")  # fmt: skip
    else:
        what, holds = f"{ctx.name} (process {pids})", "has"
    if not overdue:
        youngest = min(ages.values())
        return Status.PENDING, (
            f"{what} {holds} no AMQP connection yet ({youngest:.0f} s after start; "
            f"start_grace {ctx.grace:g} s)"
        )
    reachable = broker.first_reachable(sorted(addresses), ctx.check_timeout())
    if reachable is None:
        _note_trouble(ctx, outage=True)
        # What matters first: Pacemaker keeps only the start of an exit reason.
        detail = (
            f"an outage of a dependency: no broker of transport_url ({_format(facts.brokers)}) "
            f"accepts a connection from this node, and {what} {holds} no AMQP connection, which "
            f"restarting {ctx.name} cannot fix"
        )
        return (Status.PENDING if ctx.starting else Status.DEGRADED), detail
    where = broker.format_hostport(*reachable)
    if ctx.starting:
        return Status.FAILED, f"{what} {holds} no AMQP connection although the broker at {where} answers"
    lasting = ctx.clock.time() - _note_trouble(ctx, outage=False)
    allowed = max(ctx.grace, facts.reconnect_pause + RECONNECT_SLACK_S)
    # start_grace, but never less than oslo.messaging's longest pause between attempts and a
    # connection's set-up, or a service only waiting for its next attempt after a broker
    # outage would be restarted.
    if lasting < allowed:
        return Status.DEGRADED, (
            f"{what} {holds} no AMQP connection although the broker at {where} accepts "
            f"connections (seen for {lasting:.0f} s; failing after {allowed:g} s unless it reconnects)"
        )
    return Status.FAILED, (
        f"{what} {holds} had no AMQP connection for {lasting:.0f} s although the broker at "
        f"{where} accepts connections from this node"
    )


def _note_trouble(ctx: Context, outage: bool) -> float:
    """When the service's own AMQP trouble began (kept in HA_RSCTMP across monitors): a broker
    outage restarts the clock, since the service cannot reconnect before the broker is back
    (and then takes a while)."""
    path = ctx.state_path("amqp")
    leader = ctx.processes.leader
    key = f"{leader.pid}:{leader.start_ticks}"
    now = ctx.clock.time()
    record = trusted.read_json(path) or {}
    since = record.get("since")
    if not outage and record.get("leader") == key and isinstance(since, (int, float)):
        return float(since)
    try:
        trusted.write_json(path, {"leader": key, "since": now})
    except OSError as err:
        ctx.log.warning(f"cannot record the AMQP state in {path}: {err}")
    return now


# ---------------------------------------------------------------- heartbeat
def _epoch(stamp: Any) -> float | None:
    """os-services' updated_at ('2024-05-01T12:00:00.123456', UTC, no zone) as epoch seconds."""
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp.rstrip("Z"))
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc).timestamp()


def api_v3(ctx: Context, token: keystone.Token) -> str:
    """The block-storage v3 base of the RPC services' checks (.../v3/{project}): from url, else
    the catalog's endpoint; Finding SKIPPED when there is neither."""
    url = ctx.params.text("url").strip().rstrip("/")
    if not url:
        if not token.endpoint:
            raise Finding(Status.SKIPPED, _NO_ENDPOINT)
        return token.endpoint
    for suffix in (f"/{token.project_id}", "/v3", "/v2", "/v1"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return f"{url}/v3/{token.project_id}"


def os_services_rows(
    ctx: Context, skip: str, outage: str, binary: str = "", v3_of: V3Of | None = None
) -> list[dict[str, Any]]:
    """The rows of binary (default: the service's own) in the os-services of the v3 API v3_of
    names (default: api_v3).  Raises Finding (SKIPPED without credentials, DEGRADED when
    Keystone or cinder-api fail) with skip or outage appended."""
    binary = binary or ctx.service.os_services_binary
    v3 = v3_of or functools.partial(api_v3, ctx)

    def url_of(token: keystone.Token) -> str:
        return f"{v3(token)}/os-services?binary={binary}"

    try:
        done = authenticated_get(ctx, url_of, skip, outage)
    except http.HttpError as err:
        raise Finding(Status.DEGRADED, f"cinder-api does not answer ({err.message}): {skip}") from None
    status = done.answer.status
    if status in (401, 403):
        raise refused("os-services", status, skip)
    if status != 200:
        raise Finding(Status.DEGRADED, f"cinder-api answered HTTP {status} for GET {done.url}: {skip}")
    try:
        rows = done.answer.json()["services"]
        if not isinstance(rows, list):
            raise TypeError("services is not a list")
    except (http.HttpError, KeyError, TypeError) as err:
        raise Finding(
            Status.DEGRADED, f"unexpected os-services answer from {done.url} ({err}): {skip}"
        ) from None
    malformed = [row for row in rows if not _well_formed(row)]
    if malformed:
        # cinder-api's answer is its own trouble: judging by the rows that remain could call a
        # healthy service silent.
        raise Finding(Status.DEGRADED, (
            f"unexpected os-services answer from {done.url} ({len(malformed)} of {len(rows)} rows "
            f"are not service rows): {skip}"
        ))  # fmt: skip
    return [row for row in rows if row.get("binary", binary) == binary]


def refused(what: str, status: int, skip: str) -> Finding:
    """cinder-api refusing an admin-only GET to the monitoring user: the monitor's credentials'
    trouble, not the service's."""
    return Finding(Status.DEGRADED, (
        f"cinder-api refuses GET {what} to the monitoring user (HTTP {status}; it needs the "
        f"admin role): {skip}"
    ))  # fmt: skip


def row_updated(row: dict[str, Any] | None) -> float | None:
    """When a row's service last reported (epoch seconds), None if it never did."""
    return _epoch(row.get("updated_at") or row.get("created_at")) if row else None


def latest_by_host(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each host's row updated last.  A host can have several: servers of one host that first
    start at once (a clone's shared host) each create a row, and cinder keeps both, each server
    writing its own; the row of the one that stopped must not hide the one still reporting."""
    latest: dict[str, dict[str, Any]] = {}

    def rank(row: dict[str, Any]) -> tuple[float, bool]:
        return row_updated(row) or 0.0, row.get("state") == "up"

    for row in rows:
        kept = latest.get(row["host"])
        if kept is None or rank(row) > rank(kept):
            latest[row["host"]] = row
    return latest


@check("heartbeat")
def heartbeat(ctx: Context) -> tuple[Status, str]:
    skip = "the heartbeat in os-services is not checked"
    outage = f"{skip}; {ctx.name} is judged by its processes and connections"
    return _judge_rows(ctx, os_services_rows(ctx, skip, outage))


_NO_ENDPOINT = (
    "the Keystone catalog has no block-storage (volumev3) endpoint: set url to check the "
    "heartbeat in os-services"
)


def _well_formed(row: Any) -> bool:
    return (
        isinstance(row, dict)
        and isinstance(row.get("host"), str)
        and isinstance(row.get("binary", ""), str)
        and isinstance(row.get("state", ""), str)
    )


def _judge_rows(ctx: Context, rows: list[Any]) -> tuple[Status, str]:
    binary = ctx.service.os_services_binary
    started = ctx.processes.started_at()
    age = ctx.processes.leader_age()
    now = ctx.clock.time()
    by_host = latest_by_host(rows)
    down, silent, up = [], [], []
    for host in ctx.facts.service_hosts:
        row = by_host.get(host)
        updated = row_updated(row)
        # updated_at has microseconds, a process start time 10 ms ticks: a little slack.
        if updated is None or updated < started - 0.5:
            silent.append(host)
        elif row is not None and row.get("state") != "up":
            down.append(f"{host} (last heartbeat {now - updated:.0f} s ago)")
        else:
            up.append(host)
    if down:
        return Status.FAILED, f"{binary} is down in os-services: {', '.join(down)}"
    if silent:
        what = ", ".join(silent)
        if age < ctx.grace:
            return Status.PENDING, f"{what} not reported in os-services since the start {age:.0f} s ago"
        return (
            Status.FAILED,
            f"{what} has not reported to os-services since {ctx.name} started {age:.0f} s ago",
        )
    return Status.OK, f"up in os-services: {', '.join(up)}"
