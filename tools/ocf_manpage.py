#!/usr/bin/python3
"""Write the man page ocf_<provider>_<agent>(7) of an OCF resource agent from its meta-data.

Usage: ocf_manpage.py [--provider openstack] [--source "cinder-ocf 0.1.0"] [-o FILE] [XML|-]

XML is what `cinder-ocf meta-data AGENT` (or `AGENT meta-data`) prints; "-" or nothing reads
standard input.  The page is named the way resource-agents names its own (ocf_heartbeat_IPaddr2),
so `man ocf_openstack_cinder-api` answers on a node.  Standard library only: the RPM build runs it
with the distribution's python3, before any runtime dependency is installed.

The date on the page is SOURCE_DATE_EPOCH when set (rpmbuild sets it from the %changelog when
%source_date_epoch_from_changelog is on, as on Fedora), so a rebuild gives the same page.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import xml.etree.ElementTree as ET
from typing import List, Optional, Sequence, Tuple

# What each standard action does, in the words of resource-agents' own man pages.
ACTION_TEXT = {
    "start": "Starts the resource.",
    "stop": "Stops the resource.",
    "monitor": "Performs a detailed status check.",
    "status": "Performs a status check.",
    "validate-all": "Performs a validation of the resource configuration.",
    "meta-data": "Retrieves resource agent metadata (internal use only).",
    "promote": "Promotes the resource.",
    "demote": "Demotes the resource.",
    "notify": "Used for notifications.",
    "migrate_to": "Migrates the resource to another node.",
    "migrate_from": "Completes a migration from another node.",
    "reload": "Reloads the resource's configuration.",
    "reload-agent": "Reloads the agent's own parameters.",
}


def escape(text: str) -> str:
    """Text as troff prints it literally: backslashes, minus signs, non-ASCII characters."""
    out = []
    for char in text:
        if char == "\\":
            out.append("\\e")
        elif char == "-":
            out.append("\\-")
        elif ord(char) > 127:
            out.append(f"\\[u{ord(char):04X}]")
        else:
            out.append(char)
    return "".join(out)


def text_lines(text: str) -> List[str]:
    """A free-text block as troff input lines: paragraphs (blank-line separated) become .PP,
    lines a control character would start are protected with \\&."""
    lines: List[str] = []
    paragraph: List[str] = []
    for raw in [*text.strip().splitlines(), ""]:
        line = " ".join(raw.split())
        if line:
            paragraph.append(line)
            continue
        if paragraph:
            if lines:
                lines.append(".PP")
            for part in paragraph:
                escaped = escape(part)
                lines.append("\\&" + escaped if escaped[0] in ".'" else escaped)
            paragraph = []
    return lines


def _text(element: Optional[ET.Element], tag: str) -> str:
    if element is None:
        return ""
    found = element.find(tag)
    return (found.text or "").strip() if found is not None else ""


def _content(param: ET.Element) -> Tuple[str, str]:
    """A parameter's type and default, from its <content> element."""
    content = param.find("content")
    if content is None:
        return "string", ""
    return content.get("type", "string"), content.get("default", "")


def _seconds(value: str) -> str:
    return value if not value or value[-1].isalpha() else f"{value}s"


def manpage(xml: str, provider: str = "openstack", source: str = "", date: str = "") -> str:
    """The troff source of ocf_<provider>_<agent>(7) for the meta-data XML of one agent."""
    root = ET.fromstring(xml)
    if root.tag != "resource-agent" or not root.get("name"):
        raise ValueError("not OCF meta-data: no <resource-agent name=...> root element")
    name = root.get("name", "")
    page = f"ocf_{provider}_{name}"
    path = f"/usr/lib/ocf/resource.d/{provider}/{name}"
    params = root.findall("./parameters/parameter")
    actions = root.findall("./actions/action")
    if not date:
        epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
        date = time.strftime("%Y-%m-%d", time.gmtime(int(epoch) if epoch.isdigit() else None))
    source = source or f"{name} {root.get('version', '')}".strip()

    out = [
        f'.TH "{escape(page.upper())}" "7" "{date}" "{escape(source)}" "OCF resource agents"',
        ".nh",
        ".ad l",
        ".SH NAME",
        f"{escape(page)} \\- {escape(_text(root, 'shortdesc'))}",
        ".SH SYNOPSIS",
        f"[\\fBOCF_RESKEY_\\fIparameter\\fB=\\fIvalue\\fR ...] \\fB{escape(path)}\\fR",
        "{" + " | ".join(escape(a.get("name", "")) for a in actions) + "}",
        ".SH DESCRIPTION",
        *text_lines(_text(root, "longdesc")),
        ".PP",
        f"Pacemaker runs it as \\fBocf:{escape(provider)}:{escape(name)}\\fR.",
        ".SH PARAMETERS",
    ]
    if not params:
        out.append("None.")
    for param in params:
        kind, default = _content(param)
        facts = [kind]
        if param.get("required") == "1":
            facts.insert(0, "required")
        if param.get("unique") == "1":
            facts.insert(0, "unique")
        facts.append(f"default: {escape(default)}" if default else "no default")
        shortdesc = _text(param, "shortdesc")
        out += [".TP", f"\\fB{escape(param.get('name', ''))}\\fR ({', '.join(facts)})"]
        if shortdesc:
            out.append(escape(shortdesc.rstrip(".")) + ".")
            out.append(".br")
        out += text_lines(_text(param, "longdesc"))
    out += [".SH ACTIONS"]
    for action in actions:
        action_name = action.get("name", "")
        details = [ACTION_TEXT.get(action_name, "")]
        if action.get("timeout"):
            details.append(f"Suggested minimum timeout: {_seconds(action.get('timeout', ''))}.")
        if action.get("interval"):
            details.append(f"Suggested interval: {_seconds(action.get('interval', ''))}.")
        if action.get("depth"):
            details.append(f"Depth (OCF_CHECK_LEVEL): {action.get('depth')}.")
        out += [".TP", f"\\fB{escape(action_name)}\\fR", escape(" ".join(d for d in details if d))]
    out += _examples(provider, name, params, actions)
    out += [
        ".SH FILES",
        ".TP",
        f"\\fI{escape(path)}\\fR",
        "The agent.",
        ".SH SEE ALSO",
        "\\fBpcs\\fR(8), \\fBcrm\\fR(8), \\fBcrm_resource\\fR(8), \\fBocf\\-tester\\fR(8)",
        "",
    ]
    return "\n".join(out)


def _examples(
    provider: str, name: str, params: Sequence[ET.Element], actions: Sequence[ET.Element]
) -> List[str]:
    """pcs and crm commands creating a resource: required parameters and the monitor op."""
    agent = f"ocf:{provider}:{name}"
    required = [(p.get("name", ""), _content(p)[0]) for p in params if p.get("required") == "1"]
    monitor = next((a for a in actions if a.get("name") == "monitor"), None)
    op = ""
    if monitor is not None:
        parts = [f"{k}={_seconds(monitor.get(k, ''))}" for k in ("interval", "timeout") if monitor.get(k)]
        op = "op monitor " + " ".join(parts)

    def block(lines: List[str]) -> List[str]:
        body = [escape(line) + (" \\e" if i < len(lines) - 1 else "") for i, line in enumerate(lines)]
        return [".PP", ".RS 4", ".nf", *body, ".fi", ".RE"]

    pcs = [f"pcs resource create {name} {agent}"]
    pcs += [f"    {param}=<{kind}>" for param, kind in required]
    pcs += [f"    {op}"] if op else []
    crm = [f"primitive p_{name} {agent}"]
    if required:
        crm.append("    params " + " ".join(f'{param}="<{kind}>"' for param, kind in required))
    crm += [f"    {op}"] if op else []
    return [
        ".SH EXAMPLE",
        "With \\fBpcs\\fR(8):",
        *block(pcs),
        ".PP",
        "With the \\fBcrm\\fR(8) shell:",
        *block(crm),
    ]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("xml", nargs="?", default="-", help="meta-data XML file (default: stdin)")
    parser.add_argument("--provider", default="openstack", help="OCF provider (default: openstack)")
    parser.add_argument("--source", default="", help='page footer, e.g. "cinder-ocf 0.1.0"')
    parser.add_argument("-o", "--output", help="write the page here (default: stdout)")
    args = parser.parse_args(argv)
    if args.xml == "-":
        xml = sys.stdin.read()
    else:
        with open(args.xml, encoding="utf-8") as source:
            xml = source.read()
    try:
        page = manpage(xml, provider=args.provider, source=args.source)
    except (ET.ParseError, ValueError) as err:
        print(f"ocf_manpage: {args.xml}: {err}", file=sys.stderr)
        return 1
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(page)
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
