"""benchmarks/report.py's tables: what the one-server guard costs the monitor (issue 11), and
the cloud user's window per fault in both cinder-volume modes (issue 15)."""

from benchmarks.report import SAME_FAULTS, guard_lines, mode_lines


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
