"""The message broker as a cinder service sees it: transport_url's hosts, and who talks to them.

Exports: Transport, TransportError, Endpoint, parse_transport_url, broker_endpoints, resolve,
first_reachable, format_hostport, parse_hostport,
DEFAULT_PORT, TLS_PORT, AMQP_SCHEMES.

transport_url is parsed the way oslo.messaging's TransportURL.parse does (several hosts split
on ',', credentials before the last '@', IPv6 in brackets, the query overriding
[oslo_messaging_rabbit] options such as ``ssl``): importing oslo.messaging for that would
cost every monitor more than the rest of it.  Its password never leaves this module except
in Transport.secrets, for the log's redaction.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
from collections.abc import Iterable, Sequence

from cinder_ocf.ocf import is_ascii_number, is_true

Endpoint = tuple[str, int]

DEFAULT_PORT = 5672
TLS_PORT = 5671
# Drivers that hold a TCP connection to an AMQP broker: oslo.messaging's rabbit driver
# (also registered as kombu) and the AMQP 1.0 driver of older releases.
AMQP_SCHEMES = ("rabbit", "kombu", "amqp")


class TransportError(ValueError):
    """A transport_url that oslo.messaging would not accept either."""


class Transport:
    """What transport_url says about the broker."""

    __slots__ = ("hosts", "logins", "scheme", "secrets", "tls", "virtual_host")

    def __init__(
        self,
        scheme: str,
        hosts: list[tuple[str, int | None]],
        tls: bool | None,
        secrets: list[str],
        logins: list[tuple[str, str]] | None = None,
        virtual_host: str = "/",
    ) -> None:
        self.scheme = scheme
        self.hosts = hosts  # (host, port or None), in the URL's order
        self.tls = tls  # the URL's ?ssl=..., None when the URL does not say
        self.secrets = secrets  # passwords as written and decoded: for Logger.add_secret only
        # (user, password) of each host, decoded; a host without its own takes the previous
        # host's, as oslo.messaging does; ("guest", "guest") when none has any.
        self.logins = logins or [("guest", "guest")] * len(hosts)
        self.virtual_host = virtual_host

    @property
    def is_amqp(self) -> bool:
        return self.scheme.replace("kombu+", "") in AMQP_SCHEMES


def _unquote(text: str) -> str:
    return urllib.parse.unquote(text)


def _port(text: str, where: str) -> int:
    if not is_ascii_number(text) or not 0 < int(text) < 65536:
        raise TransportError(f"bad port {text!r} in {where}")
    return int(text)


def parse_hostport(text: str, where: str = "") -> tuple[str, int | None]:
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
    hosts: list[tuple[str, int | None]] = []
    secrets: list[str] = []
    logins: list[tuple[str, str]] = []
    login = ("guest", "guest")
    for index, entry in enumerate(netloc.split(","), 1):
        if not entry:
            continue
        hostport = entry
        if "@" in entry:
            userinfo, _, hostport = entry.rpartition("@")
            user, _, password = userinfo.partition(":")
            if password:
                secrets += [password, _unquote(password)]
            login = (_unquote(user), _unquote(password))
        hosts.append(parse_hostport(hostport, f"host {index} of transport_url"))
        logins.append(login)
    if not hosts:
        hosts, logins = [("localhost", None)], [login]
    path = tail.partition("?")[0].partition("#")[0]
    # rabbit://h/ and rabbit://h// both mean the default virtual host "/" to kombu.
    virtual_host = _unquote(path[1:]) if len(path) > 1 else "/"
    tls: bool | None = None
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if _unquote(name) == "ssl":
            tls = is_true(_unquote(value))
            if tls is None:
                raise TransportError(f"ssl={value!r} in transport_url is not a boolean")
    return Transport(scheme.lower(), hosts, tls, [s for s in secrets if s], logins, virtual_host)


def broker_endpoints(transport: Transport, conf_tls: bool, port_override: int | None) -> list[Endpoint]:
    """(host, port) pairs a service of this configuration may be connected to.

    A host without a port: oslo.messaging's rabbit driver connects to 5672 whether or not TLS
    is on, so 5672 always counts; with TLS (the URL's ?ssl= wins over [oslo_messaging_rabbit]
    ssl, as in oslo.messaging) 5671, the AMQPS port, counts too.  port_override (the 2013
    agents' amqp_server_port, when set) replaces every port.
    """
    tls = conf_tls if transport.tls is None else transport.tls
    endpoints: list[Endpoint] = []
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


def normal_ip(ip: str) -> str:
    # An IPv4 peer of an IPv6 socket shows as ::ffff:a.b.c.d.
    if ip.startswith("::ffff:") and "." in ip:
        return ip[7:]
    return ip.partition("%")[0]


def resolve(endpoints: Iterable[Endpoint]) -> tuple[set[Endpoint], list[str]]:
    """The addresses (ip, port) of broker endpoints, and the names that did not resolve."""
    addresses: set[Endpoint] = set()
    problems: list[str] = []
    for host, port in endpoints:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as err:
            problems.append(f"{host}: {getattr(err, 'strerror', None) or err}")
            continue
        for info in infos:
            addresses.add((normal_ip(str(info[4][0])), port))
    return addresses, problems


def first_reachable(addresses: Sequence[Endpoint], timeout: float) -> Endpoint | None:
    """The first address that accepts a TCP connection from here, all tried within timeout."""
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
