"""benchmarks/report.py's table of what the one-server guard costs the monitor (issue 11)."""

from benchmarks.report import guard_lines


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
