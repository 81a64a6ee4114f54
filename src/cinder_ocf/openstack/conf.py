"""cinder.conf, read through oslo.config the way cinder itself reads it.

Exports: CinderConfig, AuthSection, ConfigProblem, load_config, config_options, config_sources,
default_sources, watched_paths, fingerprint, readable_by, coordination_endpoints, NODE_LOCAL,
DEFAULT_VOLUME_DRIVER.

oslo.config does the parsing (sections, interpolation, --config-dir ordering, value checks),
with options registered here under cinder's names and defaults.  It is imported only when
cinder.conf must be parsed (~80 ms): agents cache what they derive from it under a
fingerprint of the files and parameters it came from.
"""

from __future__ import annotations

import hashlib
import os
import socket
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from cinder_ocf.log import redacted_repr
from cinder_ocf.ocf import OcfError, OcfExit

DEFAULT_VOLUME_DRIVER = "cinder.volume.drivers.lvm.LVMVolumeDriver"  # cinder's volume_driver default
# [coordination] backend_url schemes whose locks one node holds alone (tooz's file and ipc
# drivers; unset is cinder's file://$state_path).
NODE_LOCAL = ("", "file", "ipc")


def config_options(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """The --config-file and --config-dir values of a command line, in order (both spellings:
    `--option value` and `--option=value`)."""
    files: list[str] = []
    dirs: list[str] = []
    for index, arg in enumerate(args):
        for option, target in (("--config-file", files), ("--config-dir", dirs)):
            if arg == option and index + 1 < len(args):
                target.append(args[index + 1])
            elif arg.startswith(option + "="):
                target.append(arg.split("=", 1)[1])
    return files, dirs


def config_sources(config: str, additional_arguments: Sequence[str]) -> tuple[list[str], list[str]]:
    """The config files and directories the daemon will read: the config parameter plus any
    --config-file / --config-dir in additional_parameters, in order."""
    files, dirs = config_options(additional_arguments)
    return [config, *files], dirs


def default_sources(prog: str) -> tuple[list[str], list[str]]:
    """The files and directories oslo.config reads for cinder's program prog when its command
    line names none (cinder.conf and prog.conf in ~/.cinder, ~, /etc/cinder, /etc, and their
    .conf.d directories)."""
    from oslo_config import cfg  # noqa: PLC0415 - only for a copy started without --config-file

    return list(cfg.find_config_files("cinder", prog)), list(cfg.find_config_dirs("cinder", prog))


def watched_paths(files: Sequence[str], dirs: Sequence[str]) -> list[str]:
    """Every path whose change may change the configuration, for cache fingerprints."""
    paths = list(files)
    for directory in dirs:
        paths.append(directory)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        paths += [os.path.join(directory, n) for n in names if n.endswith(".conf")]
    return paths


def fingerprint(params: Mapping[str, str], files: Iterable[str]) -> str:
    """A digest of everything a cached fact was derived from: the resource's parameters and the
    identity and modification time of the files read.  Any change invalidates the cache."""
    digest = hashlib.blake2b(digest_size=32)
    for key in sorted(params):
        digest.update(f"{key}\0{params[key]}\0".encode("utf-8", "surrogateescape"))
    for path in files:
        try:
            info = os.stat(path)
            digest.update(f"{path}\0{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}\0".encode())
        except OSError as err:
            digest.update(f"{path}\0{err.errno}\0".encode())
    return digest.hexdigest()


class ConfigProblem(OcfError):
    """cinder.conf cannot be used: code says how bad (5 missing, 6 malformed)."""


class AuthSection(NamedTuple):
    """[keystone_authtoken]: the credentials cinder itself uses, the monitor's last resort."""

    auth_type: str = ""
    auth_url: str = ""
    www_authenticate_uri: str = ""
    username: str = ""
    password: str = ""
    project_name: str = ""
    user_domain_name: str = ""
    user_domain_id: str = ""
    project_domain_name: str = ""
    project_domain_id: str = ""
    application_credential_id: str = ""
    application_credential_secret: str = ""
    cafile: str = ""
    region_name: str = ""
    insecure: bool = False

    def __repr__(self) -> str:
        return redacted_repr(self, ("password", "application_credential_secret"))


class CinderConfig(NamedTuple):
    source: str = "cinder.conf"  # the config parameter's file, for operators' messages
    osapi_volume_listen: str = "0.0.0.0"
    osapi_volume_listen_port: int = 8776
    host: str = ""
    backend_host: str = ""
    enabled_backends: tuple[str, ...] = ()
    # (backend, [backend] backend_host): what cinder-volume registers as host@backend
    backend_hosts: tuple[tuple[str, str], ...] = ()
    # (backend, its volume_driver): the section's, else [backend_defaults]', else cinder's default
    backend_drivers: tuple[tuple[str, str], ...] = ()
    cluster: str = ""  # [DEFAULT] cluster: the backends are served active/active by its members
    transport_url: str = ""
    rabbit_ssl: bool = False  # [oslo_messaging_rabbit] ssl
    # The longest pause between two reconnection attempts of oslo.messaging's rabbit driver:
    # rabbit_interval_max + kombu_reconnect_delay + kombu_reconnect_splay (30 + 1 + 0).
    rabbit_reconnect_pause: float = 31.0
    rabbit_ca_file: str = ""  # [oslo_messaging_rabbit] ssl_ca_file
    # [oslo_messaging_rabbit] heartbeat_timeout_threshold: the broker drops a silent peer's
    # connection (a crashed node's) within twice this; 0 turns the heartbeats off.
    rabbit_heartbeat_timeout: int = 60
    report_interval: int = 10  # seconds between two heartbeats of a service in os-services
    # [coordination] backend_url's scheme only (the URL may hold a password): file, etcd3+http...
    coordination_scheme: str = ""
    # Its (host, port)s, without the credentials the URL may hold.
    coordination_endpoints: tuple[tuple[str, int], ...] = ()
    keystone_authtoken: AuthSection = AuthSection()

    def __repr__(self) -> str:
        return redacted_repr(self, ("transport_url",))

    @property
    def service_host(self) -> str:
        """[DEFAULT] host as cinder reads it: the node's host name when unset."""
        return self.host or socket.gethostname()

    def volume_service_hosts(self) -> list[str]:
        """The os-services host of each cinder-volume backend: host@backend, where host is the
        backend section's backend_host, else [DEFAULT] host (cinder/cmd/volume.py)."""
        overrides = dict(self.backend_hosts)
        return [f"{overrides.get(b) or self.service_host}@{b}" for b in self.enabled_backends]

    @property
    def api_url(self) -> str:
        """Where this node's cinder-api answers; a wildcard listen address means loopback."""
        host = self.osapi_volume_listen.strip() or "0.0.0.0"
        if host == "0.0.0.0":
            host = "127.0.0.1"
        elif host in ("::", "[::]"):
            host = "::1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.osapi_volume_listen_port}"


def load_config(files: Sequence[str], dirs: Sequence[str] = ()) -> CinderConfig:
    """Parse cinder's configuration; ConfigProblem when it is missing, unreadable or malformed."""
    for path in files:
        _check_readable(path)
    for directory in dirs:
        # oslo.config reads every *.conf there: a FIFO among them would hang the agent.
        for path in watched_paths([], [directory])[1:]:
            if os.path.exists(path) and not os.path.isfile(path):
                raise ConfigProblem(OcfExit.ERR_CONFIGURED, f"config file {path} is not a regular file")
    from oslo_config import cfg  # noqa: PLC0415 - ~80 ms, only when cinder.conf changed

    conf = cfg.ConfigOpts()
    conf.register_opts(
        [
            cfg.StrOpt("osapi_volume_listen", default="0.0.0.0"),
            cfg.PortOpt("osapi_volume_listen_port", default=8776),
            cfg.StrOpt("host", default=""),
            cfg.StrOpt("cluster", default=""),
            cfg.StrOpt("backend_host", default=""),
            cfg.ListOpt("enabled_backends", default=[]),
            cfg.StrOpt("transport_url", default="", secret=True),
            cfg.IntOpt("report_interval", default=10, min=1),
        ]
    )
    conf.register_opts([cfg.StrOpt("backend_url", default="", secret=True)], group="coordination")
    conf.register_opts(
        [
            cfg.BoolOpt("ssl", default=False),
            cfg.StrOpt("ssl_ca_file", default=""),
            cfg.IntOpt("rabbit_interval_max", default=30, min=1),
            cfg.FloatOpt("kombu_reconnect_delay", default=1.0, min=0.0),
            cfg.FloatOpt("kombu_reconnect_splay", default=0.0, min=0.0),
            cfg.IntOpt("heartbeat_timeout_threshold", default=60, min=0),
        ],
        group="oslo_messaging_rabbit",
    )
    auth_names = [f for f in AuthSection._fields if f != "insecure"]
    backend_host = cfg.StrOpt("backend_host", default="")
    conf.register_opt(cfg.StrOpt("volume_driver", default=DEFAULT_VOLUME_DRIVER), group="backend_defaults")
    conf.register_opts(
        [cfg.StrOpt(name, default="", secret="secret" in name or name == "password")
         for name in auth_names] + [cfg.BoolOpt("insecure", default=False)],
        group="keystone_authtoken",
    )  # fmt: skip
    args: list[str] = []
    for path in files:
        args += ["--config-file", path]
    for directory in dirs:
        args += ["--config-dir", directory]
    try:
        conf(args=args, project="cinder", default_config_files=[], default_config_dirs=[],
             use_env=False)  # fmt: skip
        section = conf.keystone_authtoken
        rabbit = conf.oslo_messaging_rabbit
        backends = tuple(b.strip() for b in conf.enabled_backends or () if b.strip())
        driver = cfg.StrOpt("volume_driver", default=conf.backend_defaults.volume_driver)
        for backend in backends:
            conf.register_opts([backend_host, driver], group=backend)
        return CinderConfig(
            source=files[0],
            osapi_volume_listen=conf.osapi_volume_listen or "0.0.0.0",
            osapi_volume_listen_port=conf.osapi_volume_listen_port,
            host=conf.host or "",
            backend_host=conf.backend_host or "",
            enabled_backends=backends,
            backend_hosts=tuple((b, conf[b].backend_host or "") for b in backends),
            backend_drivers=tuple((b, conf[b].volume_driver or DEFAULT_VOLUME_DRIVER) for b in backends),
            cluster=(conf.cluster or "").strip(),
            transport_url=conf.transport_url or "",
            rabbit_ssl=bool(rabbit.ssl),
            rabbit_ca_file=rabbit.ssl_ca_file or "",
            rabbit_heartbeat_timeout=rabbit.heartbeat_timeout_threshold,
            report_interval=conf.report_interval,
            coordination_scheme=(conf.coordination.backend_url or "").partition("://")[0].lower(),
            coordination_endpoints=coordination_endpoints(conf.coordination.backend_url or ""),
            rabbit_reconnect_pause=(
                rabbit.rabbit_interval_max + rabbit.kombu_reconnect_delay + rabbit.kombu_reconnect_splay
            ),
            keystone_authtoken=AuthSection(
                **{name: getattr(section, name) or "" for name in auth_names},
                insecure=bool(section.insecure),
            ),
        )
    except cfg.ConfigFilesNotFoundError as err:
        raise ConfigProblem(OcfExit.ERR_INSTALLED, f"cannot read {', '.join(err.config_files)}") from None
    except (cfg.Error, ValueError) as err:
        raise ConfigProblem(OcfExit.ERR_CONFIGURED, f"{files[0]}: {_first_line(err)}") from None
    finally:
        conf.reset()


# tooz drivers' default ports, for a backend_url that names none.
_COORDINATION_PORTS = {"etcd3": 2379, "etcd3+http": 2379, "etcd3+https": 2379, "etcd": 2379,
                       "redis": 6379, "zookeeper": 2181, "kazoo": 2181,
                       "memcached": 11211, "mysql": 3306, "postgresql": 5432}  # fmt: skip


def coordination_endpoints(url: str) -> tuple[tuple[str, int], ...]:
    """The (host, port)s of a tooz backend_url: zookeeper://a:2181,b:2181 names several; the
    user and password before @ are left out."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return ()
    netloc = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    default = _COORDINATION_PORTS.get(scheme.lower(), 0)
    found = []
    for item in netloc.split(","):
        try:
            parts = urllib.parse.urlsplit(f"//{item.strip()}")
            host, port = parts.hostname, parts.port or default
        except ValueError:
            continue
        if host and port:
            found.append((host, port))
    return tuple(found)


def _check_readable(path: str) -> None:
    if not os.path.exists(path):
        raise ConfigProblem(OcfExit.ERR_INSTALLED, f"config file {path} does not exist")
    if not os.path.isfile(path):
        raise ConfigProblem(OcfExit.ERR_CONFIGURED, f"config file {path} is not a regular file")
    try:
        with open(path, "rb") as src:
            src.read(1)
    except OSError as err:
        raise ConfigProblem(
            OcfExit.ERR_CONFIGURED, f"cannot read config file {path}: {err.strerror}"
        ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    # oslo.config names the option, then where it was set in a repr an operator cannot use:
    # "Value for option x from LocationInfo(location=<Locations.user: (4, True)>, detail=...)".
    head, sep, tail = text.partition(" from LocationInfo(")
    if sep and ") is not valid" in tail:
        text = head + " is not valid" + tail.split(") is not valid", 1)[1]
    return text.splitlines()[0][:300]


def readable_by(path: str, uid: int, gids: Sequence[int]) -> str | None:
    """Why user uid cannot read path, or None when it can (checked by mode bits, as root)."""
    try:
        info = os.stat(path)
    except OSError as err:
        return err.strerror
    if uid == 0:
        return None
    if info.st_uid == uid:
        return None if info.st_mode & 0o400 else "its owner has no read permission"
    if info.st_gid in gids:
        return None if info.st_mode & 0o040 else "its group has no read permission"
    return None if info.st_mode & 0o004 else "neither its owner, group nor others lets it read"
