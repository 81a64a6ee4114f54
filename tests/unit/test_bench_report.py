"""benchmarks/report.py's tables: what the one-server guard costs the monitor (issue 11), the
cloud user's window per fault in both cinder-volume modes (issue 15), and beside Pacemaker's
floor (issue 13)."""

from benchmarks.report import (
    CONSTRAINT_FORMS,
    SAME_FAULTS,
    constraints_lines,
    floor_lines,
    guard_lines,
    mode_lines,
)


def figure(median: float) -> dict:
    return {"median": median, "p95": median + 1, "min": median - 1, "n": 10}


def test_the_guard_table_shows_what_the_count_adds() -> None:
    results = {"guard": {"cinder-volume": {
        "on": {"wall_ms": figure(140.0), "cpu_ms": figure(90.0)},
        "off": {"wall_ms": figure(128.5), "cpu_ms": figure(86.0)},
    }}}  # fmt: skip
    lines = guard_lines(results)
    assert "| cinder-volume | 140.0 | 128.5 | +11.5 | 90.0 | 86.0 | +4.0 |" in lines, lines


def test_a_run_without_the_figures_says_so() -> None:
    assert guard_lines({})[-1] == "Not measured in this run."


def test_the_modes_table_puts_the_same_fault_side_by_side() -> None:
    what, passive, active = SAME_FAULTS[0]
    view = {"longest_without_s": {"create": 6.1}, "tried": {"create": 6}, "failed": {}}
    results = {
        "cluster": {"client": {passive: {**view, "longest_without_s": {"create": 20.4},
                                         "failed": {"create": 2}}}},
        "cluster_aa": {"client": {active: view}},
    }  # fmt: skip
    lines = mode_lines(results)
    assert f"| {what} | 20.4 (2 of 6 creates failed) | 6.1 (0 of 6 creates failed) |" in lines, lines
    assert f"| {SAME_FAULTS[2][0]} | - | - |" in lines  # not run: a dash, not a made-up figure
    assert mode_lines({})[-1] == "No cluster figures: run the cluster tests to get them."


def test_the_floor_table_shows_the_distance_or_a_dash() -> None:
    restarted = {
        "longest_without_s": {"create": 12.3},
        "floor_s": 8.2,
        "pacemaker_starts_s": {"cinder-volume on node1": 3.2},
    }
    outage = {"longest_without_s": {"create": 21.1}, "floor_s": None, "pacemaker_starts_s": {}}
    results = {
        "cluster": {"client": {"test_a_frozen_backend": restarted, "test_rabbitmq_outage": outage}},
        "cluster_aa": {"client": {"test_a_node_lost": {**outage, "longest_without_s": {"create": 2.9}}}},
    }  # fmt: skip
    lines = floor_lines(results)
    assert "| active/passive | a frozen backend | 12.3 | 8.2 | +4.1 | cinder-volume on node1 3.2 s |" in lines
    assert "| active/passive | rabbitmq outage | 21.1 | - | - | - |" in lines, lines
    assert "| active/active | a node lost | 2.9 | - | - | - |" in lines, lines
    assert floor_lines({})[-1] == "No cluster figures: run the cluster tests to get them."


def test_the_constraints_table_puts_both_forms_side_by_side() -> None:
    (default, default_test, default_key), (guide, guide_test, guide_key) = CONSTRAINT_FORMS
    results = {"cluster_constraints": {
        "client": {
            default_test: {"longest_without_s": {"create": 3.1}, "tried": {"create": 5}, "failed": {}},
            guide_test: {"longest_without_s": {"create": 16.4}, "tried": {"create": 6},
                         "failed": {"create": 1}, "unsettled": ["v1 error"]},
        },
        "restarted": {default_key: [], guide_key: ["cinder-scheduler@node1", "cinder-volume@node1"]},
    }}  # fmt: skip
    lines = constraints_lines(results)
    assert f"| {default} | nothing | 3.1 | 0 of 5 | none |" in lines, lines
    assert f"| {guide} | cinder-scheduler@node1, cinder-volume@node1 | 16.4 | 1 of 6 | v1 error |" in lines
    assert constraints_lines({})[-1].startswith("No figures")
