"""The OCF resource agent contract: exit codes, the environment, logging and exit reasons.

Exports: OcfExit, OcfError, Environment, Logger, is_true.

This module is on every monitor's path, so it imports only what the interpreter has already
loaded at start-up: the recurring monitor must stay cheap (see benchmarks/).
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import ClassVar, Dict, List, Mapping, Optional, Set, TextIO


class OcfExit(int):
    """Exit codes of an OCF resource agent: ints with a name, like an IntEnum's members.

    Source of truth: the OCF Resource Agent API (ClusterLabs/OCF-spec, ra/1.1/resource-agent-api.md)
    and resource-agents' ocf-returncodes.  Not an IntEnum: the enum module costs every monitor
    ~3 ms of imports, a tenth of its whole run.
    """

    __slots__ = ()

    SUCCESS: ClassVar[OcfExit]
    ERR_GENERIC: ClassVar[OcfExit]
    ERR_ARGS: ClassVar[OcfExit]
    ERR_UNIMPLEMENTED: ClassVar[OcfExit]
    ERR_PERM: ClassVar[OcfExit]
    ERR_INSTALLED: ClassVar[OcfExit]
    ERR_CONFIGURED: ClassVar[OcfExit]
    NOT_RUNNING: ClassVar[OcfExit]

    @property
    def name(self) -> str:
        return _EXIT_NAMES.get(int(self), str(int(self)))

    def __repr__(self) -> str:
        return f"<OcfExit.{self.name}: {int(self)}>"

    __str__ = int.__repr__


_EXIT_NAMES: Dict[int, str] = {}
for _code, _name in enumerate(
    ("SUCCESS", "ERR_GENERIC", "ERR_ARGS", "ERR_UNIMPLEMENTED", "ERR_PERM", "ERR_INSTALLED",
     "ERR_CONFIGURED", "NOT_RUNNING")
):  # fmt: skip
    _EXIT_NAMES[_code] = _name
    setattr(OcfExit, _name, OcfExit(_code))


class OcfError(Exception):
    """An action's answer other than success, with the reason an operator reads in crm_mon."""

    def __init__(self, code: OcfExit, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


_TRUE_WORDS = frozenset(("yes", "true", "1", "on", "y", "t"))
_FALSE_WORDS = frozenset(("no", "false", "0", "off", "n", "f", ""))


def is_true(value: str) -> Optional[bool]:
    """Read a boolean the way ocf_is_true does; None when the word is neither true nor false."""
    word = value.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


_RESKEY = "OCF_RESKEY_"
_META = "OCF_RESKEY_CRM_meta_"
DEFAULT_RSCTMP = "/run/resource-agents"


class Environment:
    """What Pacemaker tells an agent through its environment, read once."""

    def __init__(self, action: str, environ: Mapping[str, str]) -> None:
        self.action = action
        self.instance = environ.get("OCF_RESOURCE_INSTANCE", "") or "default"
        self.rsctmp = environ.get("HA_RSCTMP", "") or DEFAULT_RSCTMP
        self.params: Dict[str, str] = {}
        self.meta: Dict[str, str] = {}
        for key, value in environ.items():
            if key.startswith(_META):
                self.meta[key[len(_META) :]] = value
            elif key.startswith(_RESKEY):
                self.params[key[len(_RESKEY) :]] = value
        self.check_level = _int_or(environ.get("OCF_CHECK_LEVEL", ""), 0)

    @property
    def interval_ms(self) -> int:
        return _int_or(self.meta.get("interval", ""), 0)

    @property
    def is_probe(self) -> bool:
        """A one-off monitor Pacemaker runs to learn the state (interval 0), not a recurring one."""
        return self.action == "monitor" and self.interval_ms == 0

    def timeout_s(self, default_s: float) -> float:
        """The operation's timeout: Pacemaker kills the agent when it runs out."""
        ms = _int_or(self.meta.get("timeout", ""), 0)
        return ms / 1000.0 if ms > 0 else default_s


def _int_or(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


# Log levels as ocf-shellfuncs names them, mapped to syslog priorities.
_PRIORITY = {"debug": 7, "info": 6, "notice": 5, "warning": 4, "err": 3, "crit": 2}


class Logger:
    """Logs like ocf-shellfuncs' ocf_log: syslog per HA_LOGFACILITY, HA_LOGFILE, HA_DEBUGLOG.

    Written without the logging module, which costs a recurring monitor several milliseconds.
    Every message passes through the redaction of the secrets registered with ``add_secret``:
    a password or token never reaches a log, whatever the caller formats into a message.
    """

    def __init__(self, tag: str, environ: Mapping[str, str], stream: TextIO = sys.stderr) -> None:
        self.tag = tag
        self._stream = stream
        self._facility = environ.get("HA_LOGFACILITY", "").strip().lower()
        if self._facility == "none":
            self._facility = ""
        self._logfile = environ.get("HA_LOGFILE", "")
        self._debuglog = environ.get("HA_DEBUGLOG", "")
        # resource-agents' ocf.py treats HA_debug=0 as on; ocf-shellfuncs does not: only "0"/"" is off.
        self.debug_enabled = environ.get("HA_debug", "0") not in ("0", "")
        self._secrets: List[str] = []
        self.notices_given: Set[str] = set()

    def add_secret(self, secret: Optional[str]) -> None:
        # Short strings would redact half of every message; a 1-3 character password is not
        # worth hiding at the price of unreadable logs (and validate-all warns about it).
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "****")
        return text

    def log(self, level: str, message: str) -> None:
        if level == "debug" and not self.debug_enabled:
            return
        message = self.redact(message)
        line = f"{self.tag}[{os.getpid()}]: {level.upper()}: {message}"
        wrote = False
        if self._facility:
            wrote = self._syslog(level, line)
        target = self._debuglog if level == "debug" and self._debuglog else self._logfile
        if target:
            wrote = self._append(target, line) or wrote
        if not wrote:
            self._stream.write(line + "\n")
            self._stream.flush()

    def debug(self, message: str) -> None:
        self.log("debug", message)

    def info(self, message: str) -> None:
        self.log("info", message)

    def warning(self, message: str) -> None:
        self.log("warning", message)

    def error(self, message: str) -> None:
        self.log("err", message)

    def notice_once(self, key: str, message: str) -> None:
        """A notice given once per action, e.g. for a deprecated parameter name."""
        if key not in self.notices_given:
            self.notices_given.add(key)
            self.log("notice", message)

    def exit_reason(self, reason: str) -> None:
        """Pacemaker shows the last ``ocf-exit-reason:`` line of stderr in crm_mon and pcs status."""
        reason = " ".join(self.redact(reason).split())
        self._stream.write(f"ocf-exit-reason:{reason}\n")
        self._stream.flush()

    def _syslog(self, level: str, line: str) -> bool:
        import syslog  # noqa: PLC0415 - only when a facility is configured

        facility = getattr(syslog, "LOG_" + self._facility.upper(), None)
        if facility is None:
            return False
        syslog.openlog(self.tag, syslog.LOG_PID, facility)
        syslog.syslog(_PRIORITY.get(level, 6), line.split(": ", 1)[1])
        return True

    @staticmethod
    def _append(path: str, line: str) -> bool:
        stamp = time.strftime("%b %d %H:%M:%S")
        try:
            with open(path, "a", encoding="utf-8", errors="replace") as out:
                out.write(f"{stamp} {line}\n")
        except OSError:
            return False
        return True
