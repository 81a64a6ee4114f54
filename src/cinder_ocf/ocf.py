"""The OCF resource agent contract: exit codes, the environment Pacemaker sets, booleans.

Exports: OcfExit, OcfError, Environment, ocf_version, is_true, DEFAULT_RSCTMP, OCF_1_0, OCF_1_1.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


@enum.unique
class OcfExit(enum.IntEnum):
    """Exit codes of an OCF resource agent.

    Mirrors the OCF Resource Agent API (ClusterLabs/OCF-spec, ra/1.1/resource-agent-api.md) and
    resource-agents' heartbeat/ocf-returncodes, as Pacemaker's python/pacemaker/exitstatus.py
    mirrors its C header.
    """

    SUCCESS = 0
    ERR_GENERIC = 1
    ERR_ARGS = 2
    ERR_UNIMPLEMENTED = 3
    ERR_PERM = 4
    ERR_INSTALLED = 5
    ERR_CONFIGURED = 6
    NOT_RUNNING = 7
    DEGRADED = 190  # OCF 1.1: running, but likely to fail soon (a monitor's answer only)


class OcfError(Exception):
    """An action's answer other than success, with the reason an operator reads in crm_mon."""

    def __init__(self, code: OcfExit, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


_TRUE_WORDS = frozenset(("yes", "true", "1", "on", "y", "t"))
_FALSE_WORDS = frozenset(("no", "false", "0", "off", "n", "f", ""))


def is_true(value: str) -> bool | None:
    """Read a boolean the way ocf_is_true does; None when the word is neither true nor false."""
    word = value.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


OCF_1_0 = (1, 0)
OCF_1_1 = (1, 1)


def ocf_version(environ: Mapping[str, str]) -> tuple[int, int]:
    """The OCF version the caller speaks: Pacemaker 2.1 sets OCF_RA_VERSION_MAJOR/MINOR for
    every action, meta-data included; ocf-tester and older managers set neither, meaning 1.0."""
    major = _int_or(environ.get("OCF_RA_VERSION_MAJOR", ""), 0)
    minor = _int_or(environ.get("OCF_RA_VERSION_MINOR", ""), 0)
    return (major, minor) if major >= 1 else OCF_1_0


_RESKEY = "OCF_RESKEY_"
_META = "OCF_RESKEY_CRM_meta_"
DEFAULT_RSCTMP = "/run/resource-agents"


class Environment:
    """What Pacemaker tells an agent through its environment, read once."""

    def __init__(self, action: str, environ: Mapping[str, str]) -> None:
        self.action = action
        self.environ = environ
        self.instance = environ.get("OCF_RESOURCE_INSTANCE", "") or "default"
        self.rsctmp = environ.get("HA_RSCTMP", "") or DEFAULT_RSCTMP
        self.params: dict[str, str] = {}
        self.meta: dict[str, str] = {}
        for key, value in environ.items():
            if key.startswith(_META):
                self.meta[key[len(_META) :]] = value
            elif key.startswith(_RESKEY):
                self.params[key[len(_RESKEY) :]] = value
        level = environ.get("OCF_CHECK_LEVEL", "").strip()
        # None when unset: validate-all tells "unset" (check this node) from an explicit 0.
        self.check_level: int | None = int(level) if is_ascii_number(level) else None
        self.ocf_version = ocf_version(environ)

    @property
    def cloned(self) -> bool:
        """The resource is a clone's instance: Pacemaker runs one on several nodes at once."""
        return bool(self.meta.get("clone_max", "").strip())

    @property
    def interval_ms(self) -> int:
        return _int_or(self.meta.get("interval", ""), 0)

    @property
    def is_probe(self) -> bool:
        """A one-off monitor Pacemaker runs to learn the state (interval 0), not a recurring one."""
        return self.action == "monitor" and self.interval_ms == 0

    @property
    def reports_degraded(self) -> bool:
        """A degraded service may be answered 190: only to an OCF 1.1 manager's recurring
        monitor (a probe's 190 leaves the resource shown as "(Monitoring)")."""
        return self.action == "monitor" and not self.is_probe and self.ocf_version >= OCF_1_1

    def timeout_s(self, default_s: float) -> float:
        """The operation's timeout: Pacemaker kills the agent when it runs out."""
        ms = _int_or(self.meta.get("timeout", ""), 0)
        return ms / 1000.0 if ms > 0 else default_s


def is_ascii_number(text: str) -> bool:
    """Digits 0-9 only: str.isdigit() also takes '²' and '٣', which int() refuses or reads."""
    return text.isascii() and text.isdigit()


def _int_or(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default
