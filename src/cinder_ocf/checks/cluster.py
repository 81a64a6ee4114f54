"""What active/active adds to cinder-volume's monitor (issue 15): the lock manager the nodes
share, and the cinder cluster as cinder-api sees it.

Exports: coordination, cluster_members.

Both are about the cluster, not this node's service: an outage of the lock manager or a lost
member is DEGRADED (0 with a warning; 190 with the reason for an OCF 1.1 recurring monitor).
Restarting this node's cinder-volume would fix neither, and it keeps serving whatever needs
no lock.  Only a clone with [DEFAULT] cluster set runs them (agents/active_active.py).
"""

from __future__ import annotations

import json
import socket

from cinder_ocf.checks import Finding, Status, check
from cinder_ocf.checks.context import Context
from cinder_ocf.checks.rpc import api_v3
from cinder_ocf.checks.tokens import authenticated_get, plain_get
from cinder_ocf.openstack import http, keystone
from cinder_ocf.openstack.broker import format_hostport

CLUSTERS_MICROVERSION = "3.7"  # GET /clusters: num_hosts and num_down_hosts per cluster


def _clustered(ctx: Context) -> str:
    """Why the check does not apply, or "" when it does."""
    if not ctx.env.cloned or not ctx.facts.cluster:
        return "not a cinder cluster (active/passive)"
    return ""


@check("coordination")
def coordination(ctx: Context) -> tuple[Status, str]:
    """The lock manager of [coordination] backend_url answers: etcd's /health through its HTTP
    gateway (tooz's etcd3+http driver speaks to the same), others a TCP connection."""
    skip = _clustered(ctx)
    if skip:
        return Status.SKIPPED, skip
    facts = ctx.facts
    scheme = facts.coordination_scheme
    if not facts.coordination:
        return Status.SKIPPED, f"no host in [coordination] backend_url ({scheme}://) to ask"
    problems = []
    for host, port in facts.coordination:
        where = format_hostport(host, port)
        if scheme in ("etcd3+http", "etcd3+https"):
            web = "https" if scheme.endswith("s") else "http"
            try:
                answer = plain_get(ctx, f"{web}://{where}/health")
            except http.HttpError as err:
                problems.append(f"{where}: {err.message}")
                continue
            health = _etcd_health(answer.body)
            if answer.status == 200 and health == "true":
                return Status.OK, f"etcd at {where} is healthy"
            problems.append(f"{where}: HTTP {answer.status}, health {health or 'unknown'}")
            continue
        try:
            socket.create_connection((host, port), timeout=ctx.check_timeout()).close()
            return Status.OK, f"{scheme} at {where} accepts connections"
        except OSError as err:
            problems.append(f"{where}: {err.strerror or type(err).__name__}")
    return Status.DEGRADED, (
        f"the lock manager of [coordination] backend_url does not answer ({'; '.join(problems)}): "
        f"cinder-volume keeps serving what needs no lock, the rest waits for it"
    )


def _etcd_health(body: bytes) -> str:
    try:
        value = json.loads(body).get("health")
    except (ValueError, AttributeError):
        return ""
    return str(value).lower() if value is not None else ""


@check("cinder cluster")
def cluster_members(ctx: Context) -> tuple[Status, str]:
    """cinder-api's view of this node's clusters (one per backend: cluster@backend): a member
    down is reported, whoever it is."""
    skip = _clustered(ctx)
    if skip:
        return Status.SKIPPED, skip
    if ctx.starting:
        return Status.SKIPPED, "this node's own rows are the heartbeat check's; the others the monitor's"
    note = "the cinder cluster's members are not counted"

    def url_of(token: keystone.Token) -> str:
        return f"{api_v3(ctx, token)}/clusters/detail?binary=cinder-volume"

    version = {"OpenStack-API-Version": f"volume {CLUSTERS_MICROVERSION}"}
    try:
        done = authenticated_get(ctx, url_of, note, note, headers=version)
    except http.HttpError as err:
        raise Finding(Status.DEGRADED, f"cinder-api does not answer ({err.message}): {note}") from None
    if done.answer.status != 200:
        return Status.DEGRADED, f"cinder-api answered HTTP {done.answer.status} for GET {done.url}: {note}"
    try:
        rows = {row["name"]: row for row in json.loads(done.answer.body)["clusters"]}
    except (ValueError, KeyError, TypeError) as err:
        return Status.DEGRADED, f"unexpected clusters answer from {done.url} ({err}): {note}"
    names = [f"{ctx.facts.cluster}@{backend}" for backend in ctx.facts.backends]
    missing = [name for name in names if name not in rows]
    short = []
    whole = []
    for name in names:
        row = rows.get(name)
        if row is None:
            continue
        hosts, down = _count(row.get("num_hosts")), _count(row.get("num_down_hosts"))
        if down:
            short.append(f"{name}: {down} of {hosts} hosts down (state {row.get('state', '?')})")
        else:
            whole.append(f"{name}: {hosts} hosts up")
    if short or missing:
        lost = "; ".join(short + [f"{name}: not listed" for name in missing])
        return Status.DEGRADED, f"the cinder cluster has lost members: {lost}"
    return Status.OK, "; ".join(whole)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
