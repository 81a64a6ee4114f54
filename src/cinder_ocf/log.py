"""Logging as ocf-shellfuncs' ocf_log does it, on the stdlib's logging module.

Exports: Logger, one_line, redacted_repr.

Lines go to syslog per HA_LOGFACILITY, to HA_LOGFILE, debug lines to HA_DEBUGLOG, and to
stderr when none of those takes them.  A filter redacts every secret registered with
``add_secret`` and folds each message to one printable line, so that neither a password nor
a forged line (a newline in a parameter or in a daemon's output) reaches a log or crm_mon.
"""

from __future__ import annotations

import logging
import os
import sys
import syslog
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

NOTICE = 25  # ocf_log's "notice", between INFO and WARNING
logging.addLevelName(NOTICE, "NOTICE")
logging.addLevelName(logging.ERROR, "ERR")  # ocf_log's name for it

EXIT_REASON_MARKER = "ocf-exit-reason:"
MAX_LINE = 1000  # Pacemaker keeps a short exit reason; a log line need not be longer either

# Syslog priorities (syslog(3)) by logging level.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, NOTICE: 5, logging.WARNING: 4, logging.ERROR: 3}


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """text on one line: control characters and runs of white space become one space, the
    exit-reason marker is defused, and it is cut at limit characters."""
    cleaned = "".join(c if c.isprintable() else " " for c in text)
    cleaned = " ".join(cleaned.split()).replace(EXIT_REASON_MARKER, "ocf-exit-reason ")
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def redacted_repr(record: Any, secret: Iterable[str]) -> str:
    """The repr of a NamedTuple record with the values of its secret fields left out, so that
    a record printed in a traceback or a debugger shows no password."""
    hidden = set(secret)
    shown = (
        f"{name}={'<hidden>' if name in hidden else repr(value)}" for name, value in record._asdict().items()
    )
    return f"{type(record).__name__}({', '.join(shown)})"


class _Redactor(logging.Filter):
    """Replaces secrets and folds the message before any handler sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "****")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = one_line(self.redact(record.getMessage()))
        record.args = None
        return True


class _AppendHandler(logging.FileHandler):
    """HA_LOGFILE / HA_DEBUGLOG: a line that cannot be written goes to stderr instead of
    making logging print a traceback where Pacemaker reads the agent's output."""

    def __init__(self, path: str, fallback: logging.Handler) -> None:
        super().__init__(path, mode="a", encoding="utf-8", delay=True, errors="replace")
        self.fallback = fallback

    def handleError(self, record: logging.LogRecord) -> None:
        self.fallback.handle(record)


class _SyslogHandler(logging.Handler):
    """syslog(3) through the stdlib's syslog module, as ocf_log's logger(1) call does."""

    def __init__(self, tag: str, facility: int) -> None:
        super().__init__()
        syslog.openlog(tag, syslog.LOG_PID, facility)

    def emit(self, record: logging.LogRecord) -> None:
        syslog.syslog(_PRIORITY.get(record.levelno, 6), f"{record.levelname}: {record.getMessage()}")


class Logger:
    """The agent's log for one action: ``info``, ``warning``, ``error``, ``debug``,
    ``notice_once`` and ``exit_reason``, every line redacted."""

    def __init__(self, tag: str, environ: Mapping[str, str], stream: TextIO | None = None) -> None:
        self.tag = tag = one_line(tag, 200)
        self._stream = stream if stream is not None else sys.stderr
        self._redactor = _Redactor()
        self.notices_given: set[str] = set()
        # resource-agents' ocf.py treats HA_debug=0 as on; ocf-shellfuncs does not: only "0"/"" is off.
        self.debug_enabled = environ.get("HA_debug", "0") not in ("0", "")
        # One logger per instance, never propagated: the agent's lines go only where
        # Pacemaker's environment says.
        self._logger = logging.Logger(tag, logging.DEBUG if self.debug_enabled else logging.INFO)
        self._logger.addFilter(self._redactor)
        prefix = f"{tag}[{os.getpid()}]".replace("%", "%%")
        line = logging.Formatter(f"{prefix}: %(levelname)s: %(message)s")
        stamped = logging.Formatter(f"%(asctime)s {prefix}: %(levelname)s: %(message)s", "%b %d %H:%M:%S")
        stderr = logging.StreamHandler(self._stream)
        stderr.setFormatter(line)
        handlers: list[logging.Handler] = []
        facility = _facility(environ.get("HA_LOGFACILITY", ""))
        if facility is not None:
            handlers.append(_SyslogHandler(tag, facility))
        logfile, debuglog = environ.get("HA_LOGFILE", ""), environ.get("HA_DEBUGLOG", "")
        if logfile:
            main = _AppendHandler(logfile, stderr)
            if debuglog:
                main.addFilter(_not_debug)
            handlers.append(main)
        if debuglog:
            debug = _AppendHandler(debuglog, stderr)
            debug.addFilter(_only_debug)
            handlers.append(debug)
        if facility is None and not logfile:
            if debuglog:
                stderr.addFilter(_not_debug)
            handlers.append(stderr)
        for handler in handlers:
            if handler.formatter is None:
                handler.setFormatter(stamped if isinstance(handler, _AppendHandler) else line)
            self._logger.addHandler(handler)

    def add_secret(self, secret: str | None) -> None:
        # Short strings would redact half of every message; a 1-3 character password is not
        # worth hiding at the price of unreadable logs (and validate-all warns about it).
        secrets = self._redactor.secrets
        if secret and len(secret) >= 4 and secret not in secrets:
            secrets.append(secret)
            secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        return self._redactor.redact(text)

    def debug(self, message: str) -> None:
        self._logger.debug(message)

    def info(self, message: str) -> None:
        self._logger.info(message)

    def warning(self, message: str) -> None:
        self._logger.warning(message)

    def error(self, message: str) -> None:
        self._logger.error(message)

    def notice_once(self, key: str, message: str) -> None:
        """A notice given once per action, e.g. for a deprecated parameter name."""
        if key not in self.notices_given:
            self.notices_given.add(key)
            self._logger.log(NOTICE, message)

    def exit_reason(self, reason: str) -> None:
        """Pacemaker shows the last ``ocf-exit-reason:`` line of stderr in crm_mon and pcs status."""
        self._stream.write(f"{EXIT_REASON_MARKER}{one_line(self.redact(reason))}\n")
        self._stream.flush()


def _not_debug(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG


def _only_debug(record: logging.LogRecord) -> bool:
    return record.levelno == logging.DEBUG


def _facility(name: str) -> int | None:
    name = name.strip().lower()
    if not name or name == "none":
        return None
    value = getattr(syslog, "LOG_" + name.upper(), None)
    return value if isinstance(value, int) else None
