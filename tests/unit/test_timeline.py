"""The picture of the cloud user's requests through the faults (lab/cluster/timeline.py)."""

import xml.etree.ElementTree as ET

import pytest

from lab.cluster.timeline import FAILED, OK, svg
from lab.cluster.workload import Request

NS = "{http://www.w3.org/2000/svg}"


def test_every_request_is_a_mark_in_its_row_and_every_fault_a_named_band() -> None:
    requests = [
        Request("create", 1.0, 1.5, "ok", None),
        Request("create", 20.0, 21.0, "ConnectFailure", None),
        Request("delete", 30.0, 30.2, "ok", "v1"),
        Request("state", 31.0, 31.0, "timeout:deleting", "v1"),  # not a request: no mark
    ]
    root = ET.fromstring(svg(requests, [("power cut <node1>", 18.0, 25.0)]))
    marks = [r for r in root.iter(f"{NS}rect") if r.find(f"{NS}title") is not None]
    assert [m.get("fill") for m in marks] == [OK, FAILED, OK]
    assert [m.find(f"{NS}title").text.split()[:2] for m in marks] == [
        ["create", "ok"], ["create", "ConnectFailure"], ["delete", "ok"],
    ]  # fmt: skip
    create_y = {m.get("y") for m in marks[:2]}
    assert len(create_y) == 1 and marks[2].get("y") not in create_y  # one row per kind
    assert "power cut <node1>" in [t.text for t in root.iter(f"{NS}text")]  # escaped, and back
    band = next(r for r in root.iter(f"{NS}rect") if r.get("fill") not in (OK, FAILED, "white"))
    # the band spans the fault's 7 s at the marks' scale: the failed create lies inside it
    assert float(band.get("x")) < float(marks[1].get("x")) < float(band.get("x")) + float(band.get("width"))


def test_nothing_to_draw_is_said() -> None:
    with pytest.raises(ValueError, match="no request"):
        svg([Request("final", 1.0, 1.0, "deleted", "v1")], [])
