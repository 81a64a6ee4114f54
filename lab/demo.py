"""`make demo`: the cinder agents keeping real cinder services available in a real cluster.

On this one machine it builds a two-node Pacemaker + Corosync cluster (network, mount and PID
namespaces), runs RabbitMQ and Keystone in a namespace of their own, installs the agents,
configures cinder-api and cinder-scheduler as clones and cinder-volume as one resource behind
a virtual IP with the pcs commands of `cinder-ocf cluster-config` (the OpenStack HA guide's),
then breaks things and shows what the cluster does: cinder-api killed on one node, the VIP's
node put in standby while a client keeps calling (cinder-volume moves too, or next), Keystone
stopped, a cinder-volume started by hand, and the power of cinder-volume's node cut, with
fencing on as in production.  All along, a cloud user creates, extends and deletes volumes
through the VIP with python-cinderclient: after each fault the demo says what it saw, and the
summary has a table of it per fault and a timeline of every request (an SVG picture, its path
printed).  Everything is taken down at the end, also after a failure or Ctrl-C.

Run as root with the agents' virtualenv, from the repository root:
/var/tmp/cinder-ocf/venv/bin/python -m lab.demo (`make demo` installs everything first).
CINDER_OCF_STACK_VENV picks the OpenStack venv (default /var/tmp/cinder-ocf/stack-venv, built
on first use: several minutes).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import List, Tuple

try:
    from lab.cluster.harness import CLIENT_NS, VIP, node_ip
    from lab.cluster.scenario import (
        API,
        MONITOR_INTERVAL_S,
        Deployment,
        KillResult,
        OutageResult,
        StandbyResult,
        StrayResult,
        VolumeMove,
        api_url,
        stack_venv_for_nodes,
    )
    from lab.cluster.timeline import write as write_timeline
    from lab.cluster.workload import ClientView
except ImportError as missing:  # not the agents' venv
    sys.exit(f"{missing}: run lab.demo with the agents' venv (make demo)")

STARTED = time.monotonic()
# Beside the agents' venv, where make demo keeps its things; kept after the run, to be looked at.
TIMELINE = Path("/var/tmp/cinder-ocf/demo-timeline.svg")


def say(line: str = "") -> None:
    stamp = f"[{time.monotonic() - STARTED:6.1f}s]"
    print(f"{stamp} {line}" if line else "", flush=True)


def step(number: int, title: str) -> None:
    print(f"\n=== {number}. {title} " + "=" * max(3, 70 - len(title)), flush=True)


def show(text: str, indent: str = "    | ") -> None:
    for line in text.rstrip().splitlines():
        print(indent + line, flush=True)


def show_cluster(deployment: Deployment) -> None:
    say("$ crm_mon -1")
    show(deployment.crm_mon())
    vip_node = deployment.vip_node()
    say(
        f"cinder-api and cinder-scheduler run on both nodes, cinder-volume on "
        f"{deployment.volume_node()}; the VIP {VIP} is on {vip_node}."
    )
    say("os-services, through the VIP: every service reports as the one shared host")
    for binary in ("cinder-scheduler", "cinder-volume"):
        for host, (state, _) in deployment.os_services(binary).items():
            show(f"{binary:<17} {host:<28} {state}")
    say(f"A client in {CLIENT_NS} asks GET / (the API's version list, answered 300):")
    deployment.check_answers()
    assert deployment.stack is not None
    instance = deployment.pid_file(vip_node).rsplit("/", 1)[1][: -len(".pid")]
    say(f"What the monitor checks on {vip_node}, step by step ($ cinder-ocf check {API.agent} ...):")
    check = deployment.c.on(
        vip_node,
        str(Path(sys.executable).with_name("cinder-ocf")),
        "check",
        API.agent,
        "--config",
        str(deployment.stack.cinder_conf),
        "--instance",
        instance,
        check=False,
    )
    show(check.stdout)


# What the cloud user saw during each fault: (fault, ClientView), for the summary.
USER_SAW: List[Tuple[str, ClientView]] = []


def user_saw(deployment: Deployment, fault: str, since: float) -> None:
    """The cloud user's tally for the fault that began at since, said now and kept."""
    if deployment.client is None:
        return
    view = deployment.client.view(since, time.monotonic())
    USER_SAW.append((fault, view))
    tried, failed = sum(view.tried.values()), sum(view.failed.values())
    causes = ", ".join(f"{c} x{n}" for c, n in sorted(view.causes.items())) or "none"
    say(
        f"The cloud user meanwhile: {tried} requests, {failed} failed ({causes}); longest without a "
        f"successful create {view.longest_without['create']:.1f} s; volumes in error or stuck: "
        f"{', '.join(view.unsettled) or 'none'}."
    )


def user_table() -> None:
    """Per fault: what the cloud user saw."""
    print("\n    What the cloud user saw (python-cinderclient through the VIP):")
    width = max((len(fault) for fault, _ in USER_SAW), default=5)
    print(f"    {'fault':<{width}}  requests  failed  s without a create  volumes in error or stuck")
    for fault, view in USER_SAW:
        tried, failed = sum(view.tried.values()), sum(view.failed.values())
        stuck = ", ".join(view.unsettled) or "none"
        print(
            f"    {fault:<{width}}  {tried:8d}  {failed:6d}  {view.longest_without['create']:18.1f}  {stuck}"
        )


def kill(deployment: Deployment) -> KillResult:
    vip_node = deployment.vip_node()
    other = deployment.other_node(vip_node)
    step(4, f"cinder-api killed on {other}")
    say(
        f"Every cinder-api process on {other} gets SIGKILL, as if it crashed. Pacemaker's monitor "
        f"runs every {MONITOR_INTERVAL_S} s; we watch {api_url(node_ip(other))} directly and "
        f"the VIP (on {vip_node}) from the client."
    )
    since = time.monotonic()
    result = deployment.kill_and_recover(other)
    user_saw(deployment, "cinder-api SIGKILL", since)
    say("$ crm_mon -1   (the failure stays listed until an operator cleans it up)")
    show(deployment.crm_mon())
    deployment.cleanup()
    return result


def standby(deployment: Deployment) -> Tuple[StandbyResult, VolumeMove]:
    vip_node = deployment.vip_node()
    step(5, f"{vip_node} put in standby (maintenance)")
    say(
        f"Standby tells Pacemaker to move everything off {vip_node}: the VIP goes to the other node, "
        "and cinder-volume too if it runs there. The client keeps calling the API through the VIP; "
        "we measure how long it waits."
    )
    since = time.monotonic()
    result = deployment.standby_move()
    user_saw(deployment, "standby of the VIP's node", since)
    say("$ crm_mon -1")
    show(deployment.crm_mon())
    say(f"Now the node running cinder-volume, {deployment.volume_node()}, goes in standby: cinder-volume")
    say("moves, and os-services shows the same service hosts up, reported from the other node.")
    since = time.monotonic()
    move = deployment.standby_volume_node()
    user_saw(deployment, "standby of cinder-volume's node", since)
    say("$ crm_mon -1")
    show(deployment.crm_mon())
    return result, move


def keystone_outage(deployment: Deployment) -> OutageResult:
    step(6, "Keystone stopped for two monitor intervals")
    say(
        "Without Keystone no token can be checked. The old shell agents called every cinder-api "
        "dead then, and Pacemaker restarted them all. This agent only warns: restarting fixes nothing."
    )
    since = time.monotonic()
    result = deployment.keystone_outage()
    user_saw(deployment, "Keystone stopped", since)
    restarted = result.operations_after != result.operations_before
    failures = sum(result.fail_counts_after.values())
    say(
        f"Resources restarted during the outage: {'YES' if restarted else 'none'}; "
        f"failures counted: {failures}; the API kept answering {', '.join(result.api_status.values())}."
    )
    return result


def power_cut(deployment: Deployment) -> VolumeMove:
    node = deployment.volume_node()
    step(8, f"The power of {node} cut, fencing on")
    say(
        f"{node}'s PID 1 gets SIGKILL: every process there dies at once, as in a power failure. "
        "Fencing is on, as cinder-volume active/passive needs it in production: before the survivor "
        "starts cinder-volume, its fencer has the node confirmed off by the fence device (the lab's "
        "fence_cocf, a power switch of the namespace nodes)."
    )
    since = time.monotonic()
    move = deployment.crash_volume_node()
    user_saw(deployment, f"power cut of {node}", since)
    say("$ crm_mon -1")
    show(deployment.crm_mon())
    return move


def stray(deployment: Deployment) -> StrayResult:
    other = deployment.other_node(deployment.volume_node())
    step(7, f"A cinder-volume started by hand on {other}, outside Pacemaker")
    say(
        "An operator's `cinder-volume &`, a systemd unit left enabled: a second server of the same "
        "host@backend, taking the same requests and running its start-up cleanup under the other's "
        "feet. The running resource's monitor counts two servers on the broker's queue; the restart "
        "refuses while the copy reports; the start on the copy's node ends the copy and takes over."
    )
    since = time.monotonic()
    result = deployment.stray_on_the_other_node()
    user_saw(deployment, "a cinder-volume by hand", since)
    say(f"crm_mon listed: {result.reason}")
    say(f"At the end: {result.servers} cinder-volume, the resource's, on {deployment.volume_node()}.")
    return result


def summary(
    deployment: Deployment,
    k: KillResult,
    moves: Tuple[StandbyResult, VolumeMove],
    o: OutageResult,
    c: StrayResult,
    p: VolumeMove,
) -> None:
    s, v = moves
    step(9, "Summary")
    timings = deployment.timings.entries
    rows = [
        ("cluster formed (2 nodes online, a DC)", timings["cluster_up_s"].seconds),
        ("pcs resource create -> everything Started", timings["resources_started_s"].seconds),
        (f"SIGKILL on {k.node} -> the monitor reports the failure", k.detected_s),
        (f"SIGKILL on {k.node} -> the API answers there again", k.recovered_s),
        ("  meanwhile, longest time the VIP answered no request", k.vip_gap.seconds),
        (f"standby of {s.from_node} -> crm_mon shows the VIP on {s.to_node}", s.moved_s),
        ("  VIP unreachable window (no request answered)", s.gap.seconds),
        ("  slowest request through the VIP", s.gap.slowest),
        (f"unstandby of {s.from_node} -> cinder-api on both nodes", s.rejoined_s),
        (f"standby of {v.from_node} -> cinder-volume Started on {v.to_node}", v.moved_s),
        ("  -> its os-services rows up, reported from the new node", v.up_s),
        ("Keystone outage (nothing restarted)", o.seconds),
        ("Keystone back -> every monitor has a token again", o.token_renewed_s),
        (f"cinder-volume by hand on {c.node} -> the monitor reports a second server", c.seen_s),
        ("  -> one cinder-volume left, the resource's", c.settled_s),
        (f"power cut of {p.from_node} -> fenced (its power confirmed off)", p.fenced_s or 0.0),
        (f"  -> cinder-volume Started on {p.to_node}", p.moved_s),
        ("  -> its os-services rows up, reported from the survivor", p.up_s),
    ]
    width = max(len(what) for what, _ in rows)
    print(f"    {'event':<{width}}  seconds")
    print(f"    {'-' * width}  -------")
    for what, seconds in rows:
        print(f"    {what:<{width}}  {seconds:7.2f}")
    print(f"    ({s.gap.failed} of the client's requests failed during the standby move)")
    user_table()
    timeline(deployment)
    deployment.stop_client()


def timeline(deployment: Deployment) -> None:
    """Every request of the cloud user's, with the faults as bands: a picture to look at."""
    if deployment.client is None:
        return
    faults = [(fault, *view.window) for fault, view in USER_SAW]
    path = write_timeline(TIMELINE, deployment.client.snapshot(), faults)
    print(f"\n    A timeline of the cloud user's requests (green ok, red failed; a band per fault): {path}")


def main() -> int:
    if os.geteuid() != 0:
        print("the demo needs root: it creates namespaces, mounts and runs a cluster.", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="    (%(levelname)s %(name)s: %(message)s)")

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    print(" ".join(__doc__.split("\n\n")[1].split()) + "\n")
    step(1, "Software")
    say("Checking the OpenStack virtualenv (Keystone and Cinder from PyPI); the first run builds it.")
    venv = stack_venv_for_nodes(say)
    say(f"OpenStack venv: {venv}")

    deployment = Deployment(venv, say=say)
    failed = False
    try:
        step(2, "A two-node cluster, Keystone and RabbitMQ, the cinder services configured with pcs")
        deployment.up()
        step(3, "What the cluster shows")
        show_cluster(deployment)
        deployment.start_client()
        results = kill(deployment), standby(deployment), keystone_outage(deployment), stray(deployment)
        summary(deployment, *results, power_cut(deployment))
    except KeyboardInterrupt:
        failed = True
        say("Interrupted.")
    except Exception as err:
        failed = True
        say(f"FAILED: {type(err).__name__}: {err}")
    finally:
        step(10, "Teardown")
        signal.signal(signal.SIGINT, lambda *_: say("Teardown in progress: please wait."))
        try:
            deployment.down()
            say("Cluster, services, namespaces and the installed agents are gone.")
        except Exception as err:
            failed = True
            say(f"Teardown problem: {err}")
            say("`python -m lab.cluster.harness cleanup` ends what is left of the nodes.")
        signal.signal(signal.SIGINT, signal.default_int_handler)
    say(f"Demo {'FAILED' if failed else 'done'} in {time.monotonic() - STARTED:.0f} s.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
