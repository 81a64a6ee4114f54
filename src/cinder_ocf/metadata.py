"""Parameters and actions declared once, as data: meta-data XML and parameter parsing read them.

Exports: Parameter, Action, AgentSpec, render_metadata, parse_params, ParamValues, usage_text.

Two dialects, chosen by the OCF version the caller announces (ocf.ocf_version): OCF 1.1 for
Pacemaker 2.1 and later (``reloadable``, ``<deprecated>``, ``reload-agent``, the deep monitor),
checked against pcs's ocf-1.1.rng; OCF 1.0 for everyone else, valid against resource-agents'
ra-api-1.dtd, which ocf-tester validates and which fails 1.1 markup.
"""

from __future__ import annotations

from typing import NamedTuple, Union

from cinder_ocf.log import Logger
from cinder_ocf.ocf import OCF_1_0, OCF_1_1, Environment, OcfError, OcfExit, is_true

Value = Union[str, int, bool]


class Parameter(NamedTuple):
    """One OCF_RESKEY_* parameter."""

    name: str
    shortdesc: str
    longdesc: str
    type: str = "string"  # string | integer | boolean
    default: str = ""  # as operators see it; ${HA_RSCTMP}, ${OCF_RESOURCE_INSTANCE} expand
    required: bool = False
    unique: bool = False
    secret: bool = False  # never logged, never printed
    replaced_by: str = ""  # a deprecated name whose value feeds this parameter
    deprecated: str = ""  # why it is deprecated, for one that no parameter replaces
    # Changes only what the checks do, never the daemon: OCF 1.1's reload-agent applies it
    # without a restart.
    reloadable: bool = False
    minimum: int | None = None
    maximum: int | None = None

    @property
    def is_deprecated(self) -> bool:
        return bool(self.replaced_by or self.deprecated)


class Action(NamedTuple):
    name: str
    timeout: int  # seconds
    interval: int | None = None
    depth: int | None = None
    since: tuple[int, int] = OCF_1_0  # the first OCF version whose meta-data declares it


class AgentSpec(NamedTuple):
    """Everything meta-data says about an agent."""

    name: str
    version: str
    shortdesc: str
    longdesc: str
    parameters: tuple[Parameter, ...]
    actions: tuple[Action, ...]

    def parameter(self, name: str) -> Parameter:
        for param in self.parameters:
            if param.name == name:
                return param
        raise KeyError(name)

    def declares(self, name: str) -> bool:
        return any(param.name == name for param in self.parameters)

    def default_timeout(self, action: str) -> int:
        for act in self.actions:
            if act.name == action:
                return act.timeout
        return 20


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def render_metadata(spec: AgentSpec, version: tuple[int, int] = OCF_1_0) -> str:
    """The meta-data XML of an agent in the dialect of OCF `version`; every text escaped."""
    modern = version >= OCF_1_1
    out = ['<?xml version="1.0"?>']
    if not modern:
        out.append('<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">')
    out += [
        f'<resource-agent name="{_escape(spec.name)}" version="{_escape(spec.version)}">',
        f"<version>{'1.1' if modern else '1.0'}</version>",
        f'<longdesc lang="en">\n{_escape(spec.longdesc.strip())}\n</longdesc>',
        f'<shortdesc lang="en">{_escape(spec.shortdesc)}</shortdesc>',
        "<parameters>",
    ]
    for param in spec.parameters:
        out += _render_parameter(param, modern)
    out += ["</parameters>", "<actions>"]
    for act in spec.actions:
        if act.since > version:
            continue
        attrs = f'name="{act.name}" timeout="{act.timeout}s"'
        if act.interval is not None:
            attrs += f' interval="{act.interval}s"'
        if act.depth is not None:
            attrs += f' depth="{act.depth}"'
        out.append(f"<action {attrs} />")
    out += ["</actions>", "</resource-agent>", ""]
    return "\n".join(out)


def _render_parameter(param: Parameter, modern: bool) -> list[str]:
    longdesc = param.longdesc.strip()
    if modern:
        # OCF 1.1 replaces unique="1" by unique-group: a group of one is the same promise.
        attrs = f' unique-group="{_escape(param.name)}"' if param.unique else ""
        attrs += f' required="{int(param.required)}"'
        attrs += ' reloadable="1"' if param.reloadable else ""
    else:
        attrs = f' unique="{int(param.unique)}" required="{int(param.required)}"'
        if param.replaced_by:
            longdesc += f"\nDeprecated: use {param.replaced_by} instead."
        elif param.deprecated:
            longdesc += f"\nDeprecated: {param.deprecated}"
    out = [
        f'<parameter name="{_escape(param.name)}"{attrs}>',
        f'<longdesc lang="en">\n{_escape(longdesc)}\n</longdesc>',
        f'<shortdesc lang="en">{_escape(param.shortdesc)}</shortdesc>',
    ]
    if modern and param.is_deprecated:
        out.append("<deprecated>")
        if param.replaced_by:
            out.append(f'<replaced-with name="{_escape(param.replaced_by)}" />')
        if param.deprecated:
            out.append(f'<desc lang="en">{_escape(param.deprecated)}</desc>')
        out.append("</deprecated>")
    out += [f'<content type="{param.type}" default="{_escape(param.default)}" />', "</parameter>"]
    return out


class ParamValues:
    """Typed parameter values of one resource, with the problems found while reading them."""

    def __init__(self, values: dict[str, Value], given: dict[str, bool], raw: dict[str, str]) -> None:
        self._values = values
        self._given = given
        self.raw = raw  # as Pacemaker passed them, for cache fingerprints

    def text(self, name: str) -> str:
        return str(self._values[name])

    def integer(self, name: str) -> int:
        value = self._values[name]
        assert isinstance(value, int)
        return value

    def flag(self, name: str) -> bool:
        return bool(self._values[name])

    def given(self, name: str) -> bool:
        """True when the operator set the parameter (or its deprecated name), not its default."""
        return self._given.get(name, False)


def expand_default(default: str, env: Environment) -> str:
    return default.replace("${HA_RSCTMP}", env.rsctmp).replace("${OCF_RESOURCE_INSTANCE}", env.instance)


def parse_params(spec: AgentSpec, env: Environment, log: Logger, strict: bool) -> ParamValues:
    """Read OCF_RESKEY_* into typed values.

    strict: a bad value raises OcfError (ERR_CONFIGURED).  Not strict (stop, probes): a bad value
    is logged and replaced by the default, because stop must work whatever the configuration.
    """
    raw = dict(env.params)
    for param in spec.parameters:
        if param.replaced_by and param.name in raw:
            log.notice_once(
                param.name,
                f"parameter {param.name} is deprecated, use {param.replaced_by} instead",
            )
            # An explicit new name wins over its deprecated alias.
            raw.setdefault(param.replaced_by, raw[param.name])
    values: dict[str, Value] = {}
    given: dict[str, bool] = {}
    for param in spec.parameters:
        if param.secret:
            log.add_secret(raw.get(param.name))
    for param in spec.parameters:
        if param.replaced_by:
            continue
        text: str | None = raw.get(param.name)
        given[param.name] = text is not None
        if param.required and not (text or "").strip():
            problem = f"required parameter {param.name} is not set"
            if strict:
                raise OcfError(OcfExit.ERR_CONFIGURED, problem)
            log.warning(problem)
        if text is None:
            text = expand_default(param.default, env)
        try:
            values[param.name] = _convert(param, text)
        except ValueError as err:
            problem = f"parameter {param.name}={text!r}: {err}"
            if strict:
                raise OcfError(OcfExit.ERR_CONFIGURED, problem) from None
            log.warning(problem + "; using the default")
            values[param.name] = _convert(param, expand_default(param.default, env))
    return ParamValues(values, given, dict(env.params))


def _convert(param: Parameter, text: str) -> Value:
    if param.type == "boolean":
        flag = is_true(text)
        if flag is None:
            raise ValueError("not a boolean (use yes/no, true/false, 1/0)")
        return flag
    if param.type == "integer":
        try:
            number = int(text.strip())
        except ValueError:
            raise ValueError("not a whole number") from None
        if param.minimum is not None and number < param.minimum:
            raise ValueError(f"must be at least {param.minimum}")
        if param.maximum is not None and number > param.maximum:
            raise ValueError(f"must be at most {param.maximum}")
        return number
    if "\x00" in text:
        raise ValueError("contains a NUL character")
    return text


def usage_text(spec: AgentSpec) -> str:
    names = "|".join(dict.fromkeys(act.name for act in spec.actions if act.name != "meta-data"))
    return (
        f"usage: {spec.name} {{{names}|meta-data|usage}}\n\n"
        f"{spec.shortdesc}. Parameters come from OCF_RESKEY_* environment variables;\n"
        f"'{spec.name} meta-data' lists them.\n"
    )
