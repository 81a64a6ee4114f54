"""A stand-in for cinder-volume, cinder-scheduler and cinder-backup, for faults on demand.

Started by the agent like the real daemon (``--config-file FILE``), it reads [DEFAULT]
transport_url (the first host's address) and enabled_backends like cinder, and a [fake]
section:

  fork = yes: one child per backend of enabled_backends talks to the broker, the parent holds
         no connection (cinder-volume under oslo.service); no: the process itself talks
  respawn = yes | no: the parent replaces a child that died, as oslo.service does
  respawn_delay = seconds before the replacement is forked
  connect = yes | no: whether the talking processes connect to the broker at all
  mapped = yes: they connect through an IPv6 socket to the IPv4 address as ::ffff:a.b.c.d
         (a dual-stack client), which the kernel lists among IPv6 connections only
  child_die = yes: every child exits half a second after its start (its initialisation),
              saying why (a driver that cannot load)
  die = yes: the daemon exits at once, saying why
  die_output = what it says then (Python escapes: \n, \x1b ...)
  ignore_term = yes: every process ignores SIGTERM (only SIGKILL ends them)
  zombie = yes: each talking process forks a child that exits at once and is never reaped
  helper_late_exec = seconds: once forked, the parent also forks a child that execs a helper
           program (sleep 2) only that long after its fork, as on a node too starved to
           schedule it sooner
  helper = seconds: the parent runs a helper program (sleep) that long before it forks, and
           again once forked, as os-brick runs grep at import and drivers run sudo

A talking process keeps one TCP connection to the broker and, like oslo.messaging, tries to
reconnect every 0.2 s once it is lost.  SIGUSR1 makes it drop the connection for good while it
stays alive: a service that is up but no longer listens to the broker.
"""

import codecs
import configparser
import os
import select
import signal
import socket
import subprocess
import sys
import time


def broker_address(conf: configparser.ConfigParser) -> tuple:
    url = conf.get("DEFAULT", "transport_url", fallback="rabbit://localhost:5672/")
    netloc = url.split("://", 1)[1].split("/", 1)[0].split(",")[0].rpartition("@")[2]
    host, _, port = netloc.rpartition(":")
    return host.strip("[]"), int(port)


class Talker:
    def __init__(self, address: tuple, connect: bool, fake: dict) -> None:
        self.address = address
        self.connect = connect
        self.mapped = fake.get("mapped", "no") == "yes"
        self.sock = None
        signal.signal(signal.SIGUSR1, self.silence)
        if fake.get("ignore_term", "no") == "yes":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if fake.get("zombie", "no") == "yes" and os.fork() == 0:
            os._exit(0)  # never waited for: a zombie while this process lives

    def silence(self, *_: object) -> None:
        self.connect = False
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        print(f"fake cinder process {os.getpid()}: dropped its broker connection", flush=True)

    def connected(self) -> socket.socket:
        if not self.mapped:
            return socket.create_connection(self.address, timeout=1)
        sock = socket.socket(socket.AF_INET6)
        try:
            sock.settimeout(1)
            sock.connect((f"::ffff:{self.address[0]}", self.address[1]))
        except OSError:
            sock.close()
            raise
        return sock

    def run(self) -> None:
        while True:
            if self.sock is None:
                if self.connect:
                    try:
                        self.sock = self.connected()
                    except OSError:
                        self.sock = None
                time.sleep(0.2)
                continue
            try:
                readable, _, _ = select.select([self.sock], [], [], 0.2)
                if readable and not self.sock.recv(4096):
                    raise ConnectionResetError()
            except (OSError, ValueError):
                if self.sock is not None:
                    self.sock.close()
                self.sock = None


def config_file() -> str:  # also in the other fake: each runs as a standalone script
    """--config-file FILE or --config-file=FILE, as oslo.config takes it; without one, the
    default oslo.config finds first for cinder: ~/.cinder/cinder.conf, then /etc/cinder."""
    for index, arg in enumerate(sys.argv):
        if arg == "--config-file" and index + 1 < len(sys.argv):
            return sys.argv[index + 1]
        if arg.startswith("--config-file="):
            return arg.split("=", 1)[1]
    home = os.path.expanduser("~/.cinder/cinder.conf")
    return home if os.path.exists(home) else "/etc/cinder/cinder.conf"


def main() -> None:
    conf = configparser.ConfigParser()
    conf.read(config_file())
    fake = conf["fake"] if conf.has_section("fake") else {}
    print(f"fake cinder service starting, uid {os.getuid()}", flush=True)
    if fake.get("die", "no") == "yes":
        said = fake.get("die_output", "ERROR cinder.cmd: fake failure for the tests: cannot load the driver")
        print(codecs.decode(said, "unicode_escape"), flush=True)
        sys.exit(2)
    address = broker_address(conf)
    connect = fake.get("connect", "yes") == "yes"
    if fake.get("fork", "no") != "yes":
        Talker(address, connect, fake).run()
        return
    backends = [
        b.strip() for b in conf.get("DEFAULT", "enabled_backends", fallback="").split(",") if b.strip()
    ]
    run_parent(fake, address, connect, backends)


def run_parent(fake: dict, address: tuple, connect: bool, backends: list) -> None:
    """oslo.service's ProcessLauncher: one forked child per backend, replaced when it dies."""
    children = {}

    def spawn(backend: str) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if fake.get("child_die", "no") == "yes":
                time.sleep(0.5)
                print(f"ERROR backend {backend}: fake driver failed to initialise", flush=True)
                os._exit(1)
            try:
                Talker(address, connect, fake).run()
            finally:
                os._exit(0)
        children[pid] = backend

    def terminate(*_: object) -> None:
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in list(children):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, terminate)
    if fake.get("ignore_term", "no") == "yes":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    helper = fake.get("helper")
    if helper:
        subprocess.run(["sleep", helper], check=True)
    for backend in backends:
        spawn(backend)
    if helper:
        subprocess.Popen(["sleep", helper])  # reaped by the loop below, which ignores it
    late = fake.get("helper_late_exec")
    if late and os.fork() == 0:
        time.sleep(float(late))
        os.execvp("sleep", ["sleep", "2"])  # reaped by the loop below too
    while True:
        try:
            pid, _ = os.wait()
        except ChildProcessError:
            signal.pause()
            continue
        backend = children.pop(pid, None)
        if backend is not None and fake.get("respawn", "yes") == "yes":
            time.sleep(float(fake.get("respawn_delay", "0")))
            spawn(backend)


if __name__ == "__main__":
    main()
