"""What the cloud user saw in a window (lab/cluster/workload.py): the figures issue 13's
cluster tests print per scenario, from records laid out by hand."""

from typing import Dict

import pytest

from lab.cluster.workload import Request, longest_without, view


def test_longest_without_counts_the_window_edges() -> None:
    assert longest_without([12.0, 13.0], 10.0, 20.0) == pytest.approx(7.0)  # 13 -> the end
    assert longest_without([11.0, 19.0], 10.0, 20.0) == pytest.approx(8.0)  # between the two
    assert longest_without([], 10.0, 20.0) == pytest.approx(10.0)  # none at all
    assert longest_without([5.0, 25.0], 10.0, 20.0) == pytest.approx(10.0)  # outside: not counted


def test_a_window_counts_tries_failures_causes_and_unsettled_volumes() -> None:
    requests = [
        Request("create", 0.5, 1.0, "ok", None),
        Request("show", 1.5, 2.0, "ok", "v1"),
        Request("create", 2.0, 4.0, "http:503", None),
        Request("create", 5.0, 6.0, "ConnectFailure", None),
        Request("create", 6.5, 7.0, "ok", None),
        Request("state", 8.0, 8.0, "timeout:creating", "v2"),
        Request("extend", 30.0, 31.0, "ok", "v1"),  # after the window
    ]
    seen = view(requests, 0.0, 10.0)
    assert seen.tried == {"create": 4, "show": 1}
    assert seen.failed == {"create": 2}
    assert seen.causes == {"http:503": 1, "ConnectFailure": 1}
    assert seen.longest_without["create"] == pytest.approx(6.0)  # 1.0 -> 7.0
    assert seen.longest_without["extend"] == pytest.approx(10.0)  # none in the window
    assert seen.unsettled == ["v2 timeout:creating"]
    line = seen.line()
    assert "create 2/4 failed, 6.0 s without one" in line and "v2 timeout:creating" in line, line


def test_the_floor_is_a_monitor_interval_and_the_longest_start() -> None:
    seen = view([Request("create", 0.5, 1.0, "ok", None)], 0.0, 10.0)
    assert seen.floor_s is None  # nothing noted of the cluster
    seen.note_cluster({}, 5.0, broker_stopped=False)
    assert seen.floor_s is None and "floor" not in seen.line()  # Pacemaker started nothing
    seen.note_cluster({"cinder-volume on node2": 3.2, "vip on node2": 0.1}, 5.0, broker_stopped=False)
    assert seen.floor_s == pytest.approx(8.2)
    assert seen.as_json()["floor_s"] == 8.2
    assert "Pacemaker's floor 8.2 s" in seen.line()


@pytest.mark.parametrize(
    ("status", "starts", "broker_stopped", "replaced", "explained"),
    [
        ("error", {"cinder-volume on node1": 2.0}, False, False, True),  # its start-up cleanup
        ("error", {}, False, True, True),  # the same cleanup, by the child put in a dead one's place
        ("timeout:creating", {}, False, True, True),  # the request died with the killed child
        ("timeout:attaching", {}, False, True, False),  # never by design
        ("error", {"cinder-api on node1": 2.0}, False, False, False),  # no cinder-volume restart
        ("error", {}, True, False, False),  # a broker outage puts no volume in error
        ("timeout:creating", {"cinder-volume on node2": 2.0}, False, False, True),
        ("timeout:deleting", {}, False, False, False),
        ("timeout:extending", {}, True, False, True),  # the cast lost with the broker's queues
        ("timeout:creating", {}, True, False, True),  # the same, for a create
        ("timeout:extending", {}, False, False, False),
        ("timeout:attaching", {"cinder-volume on node1": 2.0}, False, False, False),  # never by design
        ("error", {"cinder-volume-copy on node1": 2.0}, False, False, False),  # another resource
    ],
)
def test_only_what_cinder_does_by_design_is_explained(
    status: str, starts: Dict[str, float], broker_stopped: bool, replaced: bool, explained: bool
) -> None:
    seen = view([Request("state", 1.0, 1.0, status, "v1")], 0.0, 10.0)
    seen.note_cluster(starts, 5.0, broker_stopped, replaced)
    assert seen.unexplained("cinder-volume") == ([] if explained else [f"v1 {status}"])


def test_a_volume_left_by_a_fault_counts_in_the_window_its_wait_began() -> None:
    """A wait gives up `within` seconds after it began, maybe in a later window: it is the
    window of the fault that left the volume that counts it."""
    early = Request("state", 9.0, 39.0, "timeout:creating", "v1")  # began in [0, 10], gave up late
    later = Request("state", 11.0, 12.0, "error", "v2")
    seen = view([], 0.0, 10.0)
    seen.recount_unsettled([early, later])
    assert seen.unsettled == ["v1 timeout:creating"]
    assert view([early, later], 10.0, 20.0).unsettled == ["v2 error"]
