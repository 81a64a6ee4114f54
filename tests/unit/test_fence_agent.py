"""The lab's fence agent (lab/cluster/fence_cocf.py) against its power switch, as Pacemaker's
fencer runs it: options on stdin, exit 0 for success, status 0 for on and 2 for off.  The
cluster tests then fence real namespace nodes with it (tests/cluster/test_harness.py)."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from lab.cluster.fencing import AGENT, PowerSwitch

PYTHON = "/usr/bin/python3"  # as on a node: Debian's interpreter, no venv


@pytest.fixture
def power(tmp_path: Path) -> Iterator[Tuple[PowerSwitch, Dict[str, bool]]]:
    on = {"node1": True, "node2": True}
    switch = PowerSwitch(
        tmp_path / "power",
        list(on),
        is_on=lambda node: on[node],
        power_off=lambda node: on.update({node: False}),
    ).start()
    try:
        yield switch, on
    finally:
        switch.stop()


def fence(switch: PowerSwitch, stdin: str = "", *argv: str) -> subprocess.CompletedProcess[str]:
    """fence_cocf as the fencer runs it: name=value lines on stdin (the socket named, as a
    device parameter would be)."""
    options = f"socket={switch.socket_path}\n{stdin}" if not argv else ""
    if argv:
        argv = (*argv, "-s", str(switch.socket_path))
    return subprocess.run(
        [PYTHON, str(AGENT), *argv], input=options, capture_output=True, text=True, timeout=30, check=False
    )


def test_metadata_names_the_actions_the_fencer_needs() -> None:
    result = subprocess.run(
        [PYTHON, str(AGENT), "-o", "metadata"], capture_output=True, text=True, check=True
    )
    root = ET.fromstring(result.stdout)
    assert root.get("name") == "fence_cocf"
    actions = {a.get("name") for a in root.iterfind("actions/action")}
    assert {"off", "reboot", "status", "list", "monitor", "metadata"} <= actions
    assert {"plug", "port"} <= {p.get("name") for p in root.iterfind("parameters/parameter")}


def test_off_cuts_the_power_of_that_node_only(power: Tuple[PowerSwitch, Dict[str, bool]]) -> None:
    switch, on = power
    assert fence(switch, "action=status\nport=node1\nnodename=node2\n").returncode == 0
    result = fence(switch, "action=off\nport=node1\nnodename=node2\n")
    assert result.returncode == 0, result.stderr
    assert on == {"node1": False, "node2": True}
    status = fence(switch, "action=status\nplug=node1\n")
    assert (status.returncode, status.stdout.strip()) == (2, "Status: OFF")
    # off on a node that is off already is done, not an error: the fencer may ask twice
    assert fence(switch, "action=off\nport=node1\n").returncode == 0
    offs: List[str] = [r.node for r in switch.requests("off")]
    assert offs == ["node1", "node1"]
    assert switch.fenced_since("node1", 0.0) is not None
    assert switch.fenced_since("node2", 0.0) is None


def test_the_command_line_form_and_list(power: Tuple[PowerSwitch, Dict[str, bool]]) -> None:
    switch, on = power
    listed = fence(switch, "", "-o", "list")
    assert (listed.returncode, listed.stdout.split()) == (0, ["node1,", "node2,"])
    assert fence(switch, "", "-o", "monitor").returncode == 0
    assert fence(switch, "", "-o", "off", "-n", "node2").returncode == 0
    assert on == {"node1": True, "node2": False}


@pytest.mark.parametrize(
    ("stdin", "reason"),
    [
        ("action=off\nport=node9\n", "no such node"),
        ("action=off\n", "needs a plug"),
        ("action=on\nport=node1\n", "cannot power a node on"),
        ("action=dance\nport=node1\n", "unknown action"),
    ],
)
def test_what_it_cannot_do_fails_with_a_reason(
    power: Tuple[PowerSwitch, Dict[str, bool]], stdin: str, reason: str
) -> None:
    switch, on = power
    result = fence(switch, stdin)
    assert result.returncode == 1
    assert reason in result.stderr
    assert on == {"node1": True, "node2": True}


def test_a_reboot_it_cannot_complete_is_a_failure_after_the_power_is_off(
    power: Tuple[PowerSwitch, Dict[str, bool]],
) -> None:
    """Why the harness's device sets pcmk_reboot_action=off: this switch cannot power on."""
    switch, on = power
    result = fence(switch, "action=reboot\nport=node2\n")
    assert result.returncode == 1
    assert "cannot power a node on" in result.stderr
    assert on["node2"] is False


def test_no_switch_is_a_failure_not_a_success(tmp_path: Path) -> None:
    options = f"socket={tmp_path / 'absent.sock'}\naction=off\nport=node1\n"
    result = subprocess.run(
        [PYTHON, str(AGENT)], input=options, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 1
    assert "did not answer" in result.stderr
