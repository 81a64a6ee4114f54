"""The message broker as a cinder service sees it: transport_url's hosts, and who talks to them.

Exports: Transport, TransportError, parse_transport_url, broker_endpoints, resolve,
established_peers, PeersUnavailable, first_reachable, format_hostport, parse_hostport,
DEFAULT_PORT, TLS_PORT, AMQP_SCHEMES.

transport_url is parsed the way oslo.messaging's TransportURL.parse does (several hosts split
on ',', credentials before the last '@', IPv6 in brackets, the query overriding
[oslo_messaging_rabbit] options such as ``ssl``), without importing oslo.messaging.  Its
password never leaves this module except in Transport.secrets, for the log's redaction.

A service's connections are read from /proc, as psutil reads them (the process' socket inodes
in /proc/PID/fd, their state and peer in /proc/PID/net/tcp and tcp6), never from netstat or ss
output: psutil's import alone would cost every monitor ~20 ms, more than the rest of it.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Iterable, List, Optional, Sequence, Set, Tuple

    Endpoint = Tuple[str, int]

DEFAULT_PORT = 5672
TLS_PORT = 5671
# Drivers that hold a TCP connection to an AMQP broker: oslo.messaging's rabbit driver
# (also registered as kombu) and the AMQP 1.0 driver of older releases.
AMQP_SCHEMES = ("rabbit", "kombu", "amqp")


class TransportError(ValueError):
    """A transport_url that oslo.messaging would not accept either."""


class Transport:
    """What transport_url says about the broker."""

    __slots__ = ("hosts", "scheme", "secrets", "tls")

    def __init__(
        self, scheme: str, hosts: List[Tuple[str, Optional[int]]], tls: Optional[bool], secrets: List[str]
    ) -> None:
        self.scheme = scheme
        self.hosts = hosts  # (host, port or None), in the URL's order
        self.tls = tls  # the URL's ?ssl=..., None when the URL does not say
        self.secrets = secrets  # passwords as written and decoded: for Logger.add_secret only

    @property
    def is_amqp(self) -> bool:
        return self.scheme.replace("kombu+", "") in AMQP_SCHEMES


def _unquote(text: str) -> str:
    if "%" not in text:
        return text
    from urllib.parse import unquote  # noqa: PLC0415

    return unquote(text)


def _port(text: str, where: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise TransportError(f"bad port {text!r} in {where}")
    return int(text)


def parse_hostport(text: str, where: str = "") -> Tuple[str, Optional[int]]:
    """(host, port or None) of 'host', 'host:port', '[v6]', '[v6]:port' or a bare IPv6 address."""
    where = where or repr(text)
    if text.startswith("["):
        host, closed, tail = text[1:].partition("]")
        if not closed or not host:
            raise TransportError(f"unbalanced brackets in host {where}")
        if not tail:
            return host, None
        if not tail.startswith(":"):
            raise TransportError(f"bad host {where}")
        return host, _port(tail[1:], where)
    if text.count(":") > 1:
        return text, None  # a bare IPv6 address, as oslo.utils' parse_host_port reads it
    host, colon, port = text.partition(":")
    if not host:
        raise TransportError(f"no host in {where}")
    return host, (_port(port, where) if colon else None)


def format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_transport_url(url: str) -> Transport:
    """Parse transport_url; an empty one is oslo.messaging's default, rabbit://localhost."""
    url = url.strip()
    if not url:
        return Transport("rabbit", [("localhost", None)], None, [])
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise TransportError("transport_url has no scheme (expected rabbit://...)")
    cut = len(rest)
    for mark in "/?#":
        found = rest.find(mark)
        if found >= 0:
            cut = min(cut, found)
    netloc, tail = rest[:cut], rest[cut:]
    query = tail.partition("?")[2].partition("#")[0]
    hosts: List[Tuple[str, Optional[int]]] = []
    secrets: List[str] = []
    for index, entry in enumerate(netloc.split(","), 1):
        if not entry:
            continue
        hostport = entry
        if "@" in entry:
            userinfo, _, hostport = entry.rpartition("@")
            if ":" in userinfo:
                password = userinfo.split(":", 1)[1]
                secrets += [password, _unquote(password)]
        hosts.append(parse_hostport(hostport, f"host {index} of transport_url"))
    if not hosts:
        hosts = [("localhost", None)]
    tls: Optional[bool] = None
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if _unquote(name) == "ssl":
            from cinder_ocf.ocf import is_true  # noqa: PLC0415

            tls = is_true(_unquote(value))
            if tls is None:
                raise TransportError(f"ssl={value!r} in transport_url is not a boolean")
    return Transport(scheme.lower(), hosts, tls, [s for s in secrets if s])


def broker_endpoints(transport: Transport, conf_tls: bool, port_override: Optional[int]) -> List[Endpoint]:
    """(host, port) pairs a service of this configuration may be connected to.

    A host without a port: oslo.messaging's rabbit driver connects to 5672 whether or not TLS
    is on, so 5672 always counts; with TLS (the URL's ?ssl= wins over [oslo_messaging_rabbit]
    ssl, as in oslo.messaging) 5671, the AMQPS port, counts too.  port_override (the 2013
    agents' amqp_server_port, when set) replaces every port.
    """
    tls = conf_tls if transport.tls is None else transport.tls
    endpoints: List[Endpoint] = []
    for host, port in transport.hosts:
        if port_override is not None:
            ports = [port_override]
        elif port is not None:
            ports = [port]
        else:
            ports = [DEFAULT_PORT, TLS_PORT] if tls else [DEFAULT_PORT]
        for candidate in ports:
            if (host, candidate) not in endpoints:
                endpoints.append((host, candidate))
    return endpoints


def _normal_ip(ip: str) -> str:
    # An IPv4 peer of an IPv6 socket shows as ::ffff:a.b.c.d.
    if ip.startswith("::ffff:") and "." in ip:
        return ip[7:]
    return ip.partition("%")[0]


def resolve(endpoints: Iterable[Endpoint]) -> Tuple[Set[Endpoint], List[str]]:
    """The addresses (ip, port) of broker endpoints, and the names that did not resolve."""
    import socket  # noqa: PLC0415 - only when a connection matched no cached address

    addresses: Set[Endpoint] = set()
    problems: List[str] = []
    for host, port in endpoints:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as err:
            problems.append(f"{host}: {getattr(err, 'strerror', None) or err}")
            continue
        for info in infos:
            addresses.add((_normal_ip(str(info[4][0])), port))
    return addresses, problems


class PeersUnavailable(Exception):
    """The connections of a process cannot be read (kind: gone or denied)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


_TCP_ESTABLISHED = "01"  # include/net/tcp_states.h


def established_peers(pid: int) -> Set[Endpoint]:
    """The remote (ip, port) of every ESTABLISHED TCP connection of process pid."""
    fd_dir = f"/proc/{pid}/fd"
    inodes = set()
    try:
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except FileNotFoundError:  # closed meanwhile
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        # The tables of the process' network namespace, with every socket of it: the inodes
        # say which are this process' own.
        peers: Set[Endpoint] = set()
        for table in ("tcp", "tcp6"):
            try:
                with open(f"/proc/{pid}/net/{table}", encoding="ascii") as src:
                    lines = src.read().splitlines()[1:]
            except FileNotFoundError:
                if not os.path.exists(f"/proc/{pid}"):
                    raise
                continue  # no IPv6 in this kernel
            for line in lines:
                fields = line.split()
                if len(fields) > 9 and fields[3] == _TCP_ESTABLISHED and fields[9] in inodes:
                    peers.add(_hex_endpoint(fields[2]))
    except (FileNotFoundError, ProcessLookupError):
        raise PeersUnavailable("gone", f"process {pid} is gone") from None
    except PermissionError:
        raise PeersUnavailable("denied", f"not allowed to read the sockets of process {pid}") from None
    return peers


def _hex_endpoint(text: str) -> Endpoint:
    """/proc/net/tcp's address: 0100007F:1628 is 127.0.0.1:5672 (each 32-bit word in host order)."""
    from _socket import AF_INET, AF_INET6, inet_ntop  # noqa: PLC0415

    address, _, port = text.partition(":")
    raw = bytes.fromhex(address)
    if sys.byteorder == "little":
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = inet_ntop(AF_INET if len(raw) == 4 else AF_INET6, raw)
    return _normal_ip(ip), int(port, 16)


def first_reachable(addresses: Sequence[Endpoint], timeout: float) -> Optional[Endpoint]:
    """The first address that accepts a TCP connection from here, all tried within timeout."""
    import socket  # noqa: PLC0415 - only when a process holds no broker connection

    deadline = time.monotonic() + max(timeout, 0.05)
    for index, (ip, port) in enumerate(addresses):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        share = remaining / (len(addresses) - index)
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(max(share, 0.01))
            try:
                sock.connect((ip, port))
            except OSError:
                continue
        return ip, port
    return None
