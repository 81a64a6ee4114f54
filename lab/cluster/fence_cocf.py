#!/usr/bin/python3
"""fence_cocf: the lab's fence agent, a power switch for the namespace nodes of lab.cluster.

Pacemaker's fencer runs it as it runs any fence agent of the fence-agents project: the
options come on stdin as ``name=value`` lines (``action``, ``port`` or ``plug``, ``nodename``)
or as ``-o ACTION -n PLUG`` on the command line; exit 0 is success, and ``status`` exits 0
for on, 2 for off.  Like fence_xvm talking to fence_virtd on the hypervisor, it only asks:
the switch is the harness on the host (lab.cluster.fencing.PowerSwitch), reached through a
Unix socket bound into every node, which ends a node's PID namespace by the PID it holds.
A node cannot fake being off: the switch, not the node, says what runs.

Installed into a node as /usr/sbin/fence_cocf through an overlay the node alone sees (the
fencer only runs agents from /usr/sbin); stdlib only, on Debian's /usr/bin/python3.
"""

from __future__ import annotations

import getopt
import socket
import sys

SOCKET = "/run/cocf-power/switch.sock"
TIMEOUT_S = 20.0  # the switch answers in well under a second; the fencer's own timeout is 60 s
ACTIONS = ("on", "off", "reboot", "status", "list", "monitor", "metadata")

METADATA = """<?xml version="1.0" ?>
<resource-agent name="fence_cocf" shortdesc="Power switch of the lab's namespace nodes">
<longdesc>Powers a lab.cluster node off by ending its PID namespace, through the harness's
power switch on the host. It cannot power a node on: the harness boots nodes, so use it
with pcmk_reboot_action=off.</longdesc>
<vendor-url>https://github.com/cinder-ocf</vendor-url>
<parameters>
  <parameter name="action" unique="0" required="0">
    <getopt mixed="-o, --action=[action]"/>
    <content type="string" default="off"/>
    <shortdesc lang="en">Fencing action</shortdesc>
  </parameter>
  <parameter name="plug" unique="0" required="0" obsoletes="port">
    <getopt mixed="-n, --plug=[node]"/>
    <content type="string"/>
    <shortdesc lang="en">The node to act on</shortdesc>
  </parameter>
  <parameter name="port" unique="0" required="0" deprecated="1">
    <getopt mixed="-n, --plug=[node]"/>
    <content type="string"/>
    <shortdesc lang="en">The node to act on</shortdesc>
  </parameter>
  <parameter name="socket" unique="0" required="0">
    <getopt mixed="-s, --socket=[path]"/>
    <content type="string" default="/run/cocf-power/switch.sock"/>
    <shortdesc lang="en">The power switch's Unix socket</shortdesc>
  </parameter>
</parameters>
<actions>
  <action name="on" automatic="0"/>
  <action name="off"/>
  <action name="reboot"/>
  <action name="status"/>
  <action name="list"/>
  <action name="monitor"/>
  <action name="metadata"/>
</actions>
</resource-agent>
"""


def options(argv: list[str], stdin: str) -> dict[str, str]:
    """The options from the command line, else from stdin (what the fencer sends)."""
    if argv:
        pairs, _ = getopt.getopt(argv, "o:n:s:", ["action=", "plug=", "port=", "socket="])
        names = {"-o": "action", "-n": "plug", "-s": "socket"}
        return {names.get(flag, flag.lstrip("-")): value for flag, value in pairs}
    found = {}
    for line in stdin.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and not name.startswith("#"):
            found[name] = value
    return found


def ask(path: str, request: str) -> str:
    """One request to the switch, its one-line answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(TIMEOUT_S)
        conn.connect(path)
        conn.sendall(request.encode() + b"\n")
        answer = conn.makefile("r").readline()
    return answer.strip()


def main() -> int:
    opts = options(sys.argv[1:], "" if sys.argv[1:] or sys.stdin.isatty() else sys.stdin.read())
    action = opts.get("action", "off")
    if action == "metadata":
        sys.stdout.write(METADATA)
        return 0
    if action not in ACTIONS:
        print(f"fence_cocf: unknown action {action!r}", file=sys.stderr)
        return 1
    plug = opts.get("plug") or opts.get("port") or ""
    if action in ("on", "off", "reboot", "status") and not plug:
        print(f"fence_cocf: {action} needs a plug (port)", file=sys.stderr)
        return 1
    request = "list" if action in ("list", "monitor") else f"{action} {plug}"
    try:
        answer = ask(opts.get("socket", SOCKET), request)
    except OSError as exc:
        print(f"fence_cocf: the power switch did not answer: {exc}", file=sys.stderr)
        return 1
    verdict, _, detail = answer.partition(" ")
    if verdict == "error" or not verdict:
        print(f"fence_cocf: {action} {plug}: {detail or 'no answer'}", file=sys.stderr)
        return 1
    if action == "list":
        for node in detail.split():
            print(f"{node},")
    if action == "status":
        print(f"Status: {verdict.upper()}")
        return 0 if verdict == "on" else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
