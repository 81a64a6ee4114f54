"""What the cloud user saw in a window (lab/cluster/workload.py): the figures issue 13's
cluster tests print per scenario, from records laid out by hand."""

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
