"""A failed cluster scenario's post-mortem: the lines that explain it, from its start on."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from lab.cluster import postmortem

SINCE = datetime(2026, 12, 8, 2, 50, 0).timestamp()  # local time, as cinder and Pacemaker log
SINCE_UTC = datetime.fromtimestamp(SINCE, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_each_source_keeps_its_warnings_errors_and_exit_reasons_since_the_start(tmp_path: Path) -> None:
    scheduler = _write(
        tmp_path / "cinder-scheduler.log",
        "2026-12-08 02:49:59.999 142 ERROR cinder.x [-] before the scenario",
        "2026-12-08 02:50:01.000 142 INFO cinder.x [-] routine",
        "2026-12-08 02:50:02.000 142 WARNING cinder.x [-] volume service is down",
        "2026-12-08 02:50:03.000 328 ERROR oslo_db [-] DBError: lock timeout",
    )
    postgres = _write(
        tmp_path / "postgres.log",
        f"{SINCE_UTC}.500 UTC [31008] LOG:  checkpoint starting: time",
        f"{SINCE_UTC}.600 UTC [31019] LOG:  process 31019 still waiting for ShareLock on transaction 42",
        f"{SINCE_UTC}.700 UTC [31019] ERROR:  canceling statement due to lock timeout",
    )
    month_day = datetime.fromtimestamp(SINCE).strftime("%b %d")
    pacemaker = _write(
        tmp_path / "pacemaker.log",
        f"{month_day} 02:50:05.000 node2 pacemaker-execd  [35] (log_op_output) info: "
        "x ocf-exit-reason:execd's copy",
        f"{month_day} 02:50:05.001 node2 pacemaker-controld  [38] (log_executor_event) notice: "
        "cinder-scheduler_monitor_5000@node2 output [ ocf-exit-reason:heartbeat: down in os-services ]",
        f"{month_day} 02:50:06.000 node2 pacemaker-controld  [38] (do_state_transition) notice: routine",
    )

    text = postmortem.report(SINCE, [scheduler], postgres, [pacemaker])
    lines = text.splitlines()

    assert "volume service is down" in text and "DBError: lock timeout" in text
    assert "before the scenario" not in text and "routine" not in text
    assert "still waiting for ShareLock" in text and "canceling statement" in text
    assert "checkpoint" not in text
    assert [line for line in lines if "ocf-exit-reason" in line] == [pacemaker.read_text().splitlines()[1]]
    assert lines[0].startswith(f"--- {scheduler} (2 lines")


def test_a_long_source_is_cut_to_its_last_lines_and_a_quiet_one_says_so(tmp_path: Path) -> None:
    volume = _write(
        tmp_path / "cinder-volume.log",
        *(
            f"2026-12-08 02:51:{n // 10:02d}.{n % 10}00 7 WARNING cinder.v [-] warning {n}"
            for n in range(100)
        ),
    )
    text = postmortem.report(SINCE, [volume], tmp_path / "absent.log", [])
    kept = [line for line in text.splitlines() if "warning" in line]
    assert len(kept) == postmortem.TAIL
    assert kept[-1].endswith("warning 99") and kept[0].endswith(f"warning {100 - postmortem.TAIL}")

    assert postmortem.report(SINCE, [], tmp_path / "absent.log", []).startswith("no warning, error")


def test_a_window_ends_where_it_is_told(tmp_path: Path) -> None:
    """The aggregate test reads one earlier scenario's time, not the logs up to now."""
    log = _write(
        tmp_path / "cinder-volume.log",
        "2026-12-08 02:50:01.000 7 WARNING cinder.v [-] inside",
        "2026-12-08 02:50:09.000 7 WARNING cinder.v [-] after",
    )
    text = postmortem.report(SINCE, [log], tmp_path / "absent.log", [], until=SINCE + 5)
    assert "inside" in text and "after" not in text
