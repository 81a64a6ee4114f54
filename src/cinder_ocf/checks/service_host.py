"""One service host, one server: cinder-volume (and a primitive cinder-backup) never run twice
for the same host@backend (issue 11).

Exports: GUARD_PARAMETER, guarded, nobody_else_serves, one_server, transport, QUEUE_LAYOUT.

Two servers of one service host consume the same RPC queues, and the one that starts runs
cinder's start-up cleanup (volumes in `creating` set to `error`, deletes re-run, backups
failed) under the other's feet.  Two guards:

- before start spawns anything, os-services is asked whether each host the service will serve
  reports right now: a row whose heartbeat advances while this resource runs nothing here is
  someone else's server, and start refuses.  A row that stopped advancing (a crashed or
  fenced node) does not block; finding that out costs at most report_interval + 1 s, nothing
  when the row is already older.  Not even this resource's own restart skips the wait: a
  report from before its stop may have been another server's too.
  When os-services cannot tell (cinder-api does not answer for as long, or there are no
  credentials), the broker's consumer count on the host's queues can: a consumer while this
  resource runs nothing is someone else's server, or a dead one's connection the broker has
  not dropped yet (it does within two heartbeat timeouts), so start waits for them to leave.
- while the service runs, the broker's consumer count on the host's queues tells how many
  servers listen: more than one server's worth is a second server, wherever it runs.
"""

from __future__ import annotations

from cinder_ocf.checks import Finding, Status, check
from cinder_ocf.checks.context import Context
from cinder_ocf.checks.rpc import latest_by_host, os_services_rows, row_updated
from cinder_ocf.metadata import Parameter
from cinder_ocf.ocf import OcfError, OcfExit
from cinder_ocf.openstack import broker, queues

SLACK_S = 1.0  # a heartbeat may come this late after its report_interval (database, load)
_POLL_S = 1.0

# The queues whose consumers count the servers of one service host, as cinder's RPC servers
# declare them (oslo.messaging: a server of topic T and name S consumes queue T.S), and the
# consumers one server holds on each.  cinder-volume runs two RPC servers per backend:
# topic cinder-volume, server host@backend, and topic cinder-volume.host@backend, server host
# (measured on cinder 29: 2 consumers on cinder-volume.H@B and 1 on cinder-volume.H@B.H for one
# server).  The second queue, one consumer per server, is asked first; a release without it
# leaves the first.  cinder-backup: topic cinder-backup, server host.
QUEUE_LAYOUT: dict[str, tuple[tuple[str, int], ...]] = {
    "cinder-volume": (("{topic}.{host}.{short}", 1), ("{topic}.{host}", 2)),
    "cinder-backup": (("{topic}.{host}", 1),),
}

GUARD_PARAMETER = Parameter(
    "guard_service_host", "Never two servers of one service host",
    "Before start, wait up to report_interval + 1 s (nothing when the last heartbeat is older) "
    "to see whether another server still reports for the service hosts this one will serve "
    "(os-services, with the monitor's credentials; a look cinder-api does not answer is made "
    "again once a second, for as long once more), and refuse to start if one does. When "
    "os-services cannot say (no credentials, cinder-api down for as long), wait while the "
    "broker counts consumers on the host's queues (a crashed server's leave within 2 x "
    "[oslo_messaging_rabbit] heartbeat_timeout_threshold), and refuse if they stay. While "
    "running, fail the monitor when the broker counts a second server's consumers on the "
    "host's queues. Turn it off only where fencing alone is trusted to prevent two servers "
    "and the failover must not wait for the last heartbeat. A cloned cinder-backup is not "
    "guarded: it runs one server per node by design.",
    type="boolean", default="true", reloadable=True,
)  # fmt: skip


def guarded(ctx: Context) -> bool:
    """Whether this resource is held to one server per service host: the parameter, and a
    cinder-backup only as a primitive (a clone runs one per node, by design)."""
    if not ctx.params.flag("guard_service_host"):
        return False
    binary = ctx.service.os_services_binary
    if binary == "cinder-backup" and ctx.env.cloned:
        return False
    return binary in QUEUE_LAYOUT


# ---------------------------------------------------------------- before start
def nobody_else_serves(ctx: Context) -> None:
    """Refuse to start while another server reports for one of this service's hosts."""
    if not guarded(ctx):
        return
    skip = "os-services cannot say whether another server reports"
    interval = ctx.facts.report_interval
    try:
        first = _first_reports(ctx, skip, ctx.clock.time() + interval + SLACK_S)
    except Finding as found:
        _nobody_listens(ctx, found.detail)
        return
    now = ctx.clock.time()
    # Rows whose last report is recent enough that their server may still be alive.
    watched = {
        host: updated
        for host, updated in first.items()
        if updated is not None and now - updated <= interval + SLACK_S
    }
    if not watched:
        return
    until = max(watched.values()) + interval + SLACK_S
    ctx.log.info(
        f"{', '.join(sorted(watched))} reported {now - min(watched.values()):.1f} s ago: waiting up to "
        f"{max(0.0, until - now):.1f} s (report_interval {interval:g} s + {SLACK_S:g} s) to see "
        f"whether another server still reports"
    )

    def out_of_time() -> OcfError:
        return OcfError(
            OcfExit.ERR_GENERIC,
            f"the operation timeout ended while waiting whether {', '.join(sorted(watched))} "
            f"still reports (report_interval {interval:g} s): raise the start timeout",
        )

    # A look that fails (cinder-api moving with the VIP) is made again: silence counts only
    # when a look after the report was due saw it, for up to one more interval.
    give_up = until + interval + SLACK_S
    looked_at = ctx.clock.time()
    failed = ""
    while looked_at < until:
        now = ctx.clock.time()
        if now >= give_up:  # only failed looks since the report was due
            _nobody_listens(ctx, failed)
            return
        if ctx.deadline.remaining() < _POLL_S + SLACK_S:  # no time left for one more look
            raise out_of_time()
        ctx.clock.sleep(min(_POLL_S, until - now) if now < until else _POLL_S)
        try:
            latest = _reports(ctx, skip)
        except Finding as found:
            if ctx.deadline.remaining() < SLACK_S:
                raise out_of_time() from None  # the request failed for want of time
            if found.detail != failed:  # said once, not once a second
                ctx.log.info(f"{found.detail}; looking again once a second")
            failed = found.detail
            continue
        looked_at = ctx.clock.time()
        for host, before in watched.items():
            after = latest.get(host)
            if after is not None and after > before:
                raise OcfError(
                    OcfExit.ERR_GENERIC,
                    f"{host} is served by another {ctx.service.os_services_binary}: its heartbeat in "
                    f"os-services advanced {ctx.clock.time() - after:.0f} s ago while this resource "
                    f"runs nothing here (another node, a container, a copy started by hand); "
                    f"refusing to start a second server of it",
                )
    ctx.log.info(f"no server reported for {', '.join(sorted(watched))} since: starting")


def _first_reports(ctx: Context, skip: str, give_up: float) -> dict[str, float | None]:
    """The rows' last reports, asked again once a second until give_up while cinder-api fails:
    in a failover the VIP and cinder-api may move in the same transition as this start (the
    orders are Optional), and one failed request must not let a second server start unseen."""
    said = ""
    while True:
        try:
            return _reports(ctx, skip)
        except Finding as found:
            retry = found.status is not Status.SKIPPED and ctx.clock.time() + _POLL_S <= give_up
            if not retry or ctx.deadline.remaining() < 2 * (_POLL_S + SLACK_S):
                raise
            if found.detail != said:
                ctx.log.info(f"{found.detail}; asking again once a second")
            said = found.detail
            ctx.clock.sleep(_POLL_S)


def _reports(ctx: Context, skip: str) -> dict[str, float | None]:
    by_host = latest_by_host(os_services_rows(ctx, skip, skip))
    return {host: row_updated(by_host.get(host)) for host in ctx.facts.service_hosts}


def _nobody_listens(ctx: Context, unread: str) -> None:
    """os-services could not tell (unread says why): wait while the broker counts consumers on
    the host's queues, and refuse if they stay.  A dead server's connections stay until the
    broker misses its heartbeats: checked every heartbeat timeout, dropped at the second
    silent check.  A broker that cannot be asked either does not block a failover."""
    binary = ctx.service.os_services_binary
    threshold = ctx.facts.heartbeat_timeout
    began = ctx.clock.time()
    give_up = began + 2 * threshold + SLACK_S if threshold else float("inf")
    said = False
    while True:
        try:
            listening = [f"{queue}: {n} consumer{'s' * (n > 1)}" for queue, n, _ in _first_counts(ctx) if n]
        except queues.QueueError as err:
            outage = "" if err.kind == "missing" else " (a dependency's outage must not block a failover)"
            ctx.log.warning(
                f"{unread}, and the broker cannot count the consumers either ({err.message}): "
                f"starting anyway{outage}"
            )
            return
        if not listening:
            ctx.log.info(f"{unread}; the broker counts no consumer on {binary}'s queues: starting")
            return
        now = ctx.clock.time()
        out_of_time = ctx.deadline.remaining() < _POLL_S + SLACK_S + ctx.check_timeout()
        if now >= give_up or out_of_time:
            bound = (
                f"a dead server's consumers leave within 2 x heartbeat_timeout_threshold ({threshold:g} s)"
                if threshold
                else "with heartbeat_timeout_threshold = 0 a dead server's consumers never leave"
            )
            raise OcfError(
                OcfExit.ERR_GENERIC,
                f"{', '.join(ctx.facts.service_hosts)} may be served by another {binary}: {unread}, "
                f"and after {now - began:.0f} s the broker still counts {'; '.join(listening)} while "
                f"this resource runs nothing here ({bound}); refusing "
                f"to start a second server"
                + ("; the start timeout ended before that bound" if out_of_time and now < give_up else ""),
            )
        if not said:
            ctx.log.info(
                f"{unread}; the broker counts {'; '.join(listening)}: waiting "
                f"{'up to ' + format(give_up - now, '.0f') + ' s ' if threshold else ''}for them to "
                f"leave (a dead server's connections last until the broker misses its heartbeats)"
            )
            said = True
        ctx.clock.sleep(_POLL_S)


# ---------------------------------------------------------------- while running
@check("one server")
def one_server(ctx: Context) -> tuple[Status, str]:
    """The broker counts no more consumers on the service host's queues than one server holds."""
    if not guarded(ctx):
        return Status.SKIPPED, "guard_service_host is off"
    if ctx.starting:
        # Start's side is the heartbeat guard before the spawn; a second server appearing
        # meanwhile is the first monitor's to see, and start need not wait on the broker.
        return Status.SKIPPED, "counted by the monitor"
    binary = ctx.service.os_services_binary
    try:
        counted = _first_counts(ctx)
    except queues.QueueError as err:
        why = {"missing": Status.SKIPPED}.get(err.kind, Status.DEGRADED)
        return why, (
            f"cannot count the consumers of {binary}'s queues ({err.message}): a second server "
            f"is not looked for"
        )  # fmt: skip
    seen: list[str] = []
    doubled: list[str] = []
    silent: list[str] = []
    for queue, consumers, per in counted:
        if consumers is None or consumers == 0:
            silent.append(f"{queue} ({'no such queue' if consumers is None else 'no consumer'})")
        elif consumers > per:
            servers = consumers / per
            doubled.append(f"{queue} has {consumers} consumers ({servers:g} servers' worth; one holds {per})")
        else:
            seen.append(f"{queue}: {consumers}")
    if doubled:
        detail = (
            f"a second server of the same service host runs elsewhere: {'; '.join(doubled)}. Two servers "
            f"of one host@backend consume the same requests, and each start-up cleanup hurts the "
            f"other's volumes: find and stop the other one (another node, a container, a copy "
            f"started by hand)"
        )
        return Status.FAILED, detail
    if silent:
        # Within a reconnection after a broker restart, or the service stopped listening: its
        # own checks (connections, heartbeat) judge that; here it only means nothing to count.
        return Status.DEGRADED, (
            f"nothing to count on {', '.join(silent)}: {binary} does not listen to its queue yet"
        )
    return Status.OK, f"one server per service host ({', '.join(seen)})"


def _first_counts(ctx: Context) -> list[tuple[str, int | None, int]]:
    """Per service host, (the first of its queues that exists, its consumers, the consumers one
    server holds there), the last queue with None when none exists; QueueError when the broker
    cannot be asked."""
    facts = ctx.facts
    if facts.amqp_skip:
        raise queues.QueueError("missing", facts.amqp_skip)
    binary = ctx.service.os_services_binary
    names = [
        [(p.format(topic=binary, host=host, short=host.partition("@")[0]), per)
         for p, per in QUEUE_LAYOUT[binary]]
        for host in facts.service_hosts
    ]  # fmt: skip
    counts = queues.consumer_counts(
        transport(ctx), facts.brokers, [[q for q, _ in pairs] for pairs in names], facts.tls,
        facts.ca_file, ctx.check_timeout(),
    )  # fmt: skip
    found = []
    for pairs in names:
        last, per = pairs[-1]
        present = ((q, counts[q], p) for q, p in pairs if counts.get(q) is not None)
        found.append(next(present, (last, None, per)))
    return found


def transport(ctx: Context) -> broker.Transport:
    """transport_url parsed, its passwords registered as secrets before anything logs."""
    parsed = broker.parse_transport_url(ctx.transport_url())
    for secret in parsed.secrets:
        ctx.log.add_secret(secret)
    return parsed
