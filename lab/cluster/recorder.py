"""A client process of the lab's that prints one record per line while it runs (the VIP poller,
the cloud user's volumes): its records kept as they arrive, and its stop by closing stdin."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
from typing import IO, Callable, Generic, List, Optional, Sequence, TypeVar

from lab.cluster.harness import NODE_ENV

Record = TypeVar("Record")


class Recorder(Generic[Record]):
    """argv started with a pipe on stdin; parse(line) -> a record, or None for a line that is
    not one.  stop() closes stdin, which tells the process to finish, and waits for it."""

    def __init__(self, argv: Sequence[str], parse: Callable[[str], Optional[Record]]) -> None:
        self.argv = list(argv)
        self.parse = parse
        self.stderr = ""  # the end of what it wrote there, once stopped
        self._records: List[Record] = []
        self._lock = threading.Lock()
        self._proc: Optional[subprocess.Popen[str]] = None
        self._reader: Optional[threading.Thread] = None
        self._errors: Optional[IO[str]] = None

    def start(self, first_line: str = "") -> None:
        """first_line: written to its stdin first (a secret travels there, never in argv)."""
        # stderr to a file, not a pipe that nobody reads would fill up; closed in stop().
        self._errors = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self._proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors, text=True,
            env=NODE_ENV, start_new_session=True,
        )  # fmt: skip
        if first_line:
            assert self._proc.stdin is not None
            self._proc.stdin.write(first_line + "\n")
            self._proc.stdin.flush()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            record = self.parse(line)
            if record is not None:
                with self._lock:
                    self._records.append(record)

    def stop(self, timeout: float) -> None:
        """Close its stdin and give it timeout seconds to finish, then kill it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()  # our own child, by its Popen
            proc.wait(10)
        if self._reader is not None:
            self._reader.join(10)
        assert self._errors is not None
        with self._errors:
            self._errors.seek(0)
            self.stderr = self._errors.read()[-2000:]

    def records(self) -> List[Record]:
        with self._lock:
            return list(self._records)
