"""Install what the lab needs: the OpenStack stack venv, Debian packages, users.

* :func:`ensure_stack_venv` builds a virtualenv with Keystone + Cinder pinned by
  ``lab/stack/requirements.lock`` (a ``pip freeze``) from Debian's ``/usr/bin/python3``.
* :func:`ensure_debian_packages` installs missing Debian packages without starting them.
* :func:`ensure_service_user` creates the system account the Cinder daemons run as.

Run ``python -m lab.stack.install`` from the project root (as root) to do all of it.
Stdlib only: it runs in the agents' venv and on a bare Debian 12.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List, Optional

LOG = logging.getLogger(__name__)

LOCK_FILE = Path(__file__).resolve().with_name("requirements.lock")
VENV_ENV_VAR = "CINDER_OCF_STACK_VENV"
DEFAULT_VENV = Path("/var/tmp/cinder-ocf/stack-venv")
MARKER_NAME = ".cinder-ocf-lock.sha256"
# Debian's interpreter.  NOT the `python3` on PATH (may be a pyenv shim or another build).
SYSTEM_PYTHON = Path("/usr/bin/python3")
# What a usable stack venv must contain (bin/ entries).
REQUIRED_BINARIES = ("python", "cinder-api", "cinder-manage", "keystone-manage", "gunicorn")
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
# The Debian packages of the stack's own servers (lab/stack/openstack.py, database.py).
STACK_PACKAGES = ("rabbitmq-server", "postgresql", "etcd-server")

_apt_state = {"updated": False}


def lock_sha256(lock: Path = LOCK_FILE) -> str:
    """sha256 (hex) of the lock file's bytes."""
    return hashlib.sha256(lock.read_bytes()).hexdigest()


def stack_venv_path() -> Path:
    """``$CINDER_OCF_STACK_VENV`` or the default ``/var/tmp/cinder-ocf/stack-venv``."""
    value = os.environ.get(VENV_ENV_VAR, "").strip()
    return Path(value) if value else DEFAULT_VENV


def venv_is_complete(venv: Path) -> bool:
    """True if ``venv/bin`` has a python and the OpenStack commands the harness runs."""
    return all(os.access(venv / "bin" / name, os.X_OK) for name in REQUIRED_BINARIES)


def _run(argv: List[str], **kwargs: object) -> None:
    LOG.info("running: %s", " ".join(argv))
    subprocess.run(argv, check=True, **kwargs)  # type: ignore[call-overload]


def _makedirs_0755(path: Path) -> None:
    """mkdir -p with mode 0755 for every directory created, whatever the umask."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir()
        os.chmod(directory, 0o755)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive flock on *path*: parallel test sessions must not build the venv twice."""
    _makedirs_0755(path.parent)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _venv_state(venv: Path, want: str, explicit: bool) -> Optional[str]:
    """None if *venv* can be used as is, else the reason to (re)build it."""
    marker = venv / MARKER_NAME
    if marker.is_file():
        have = marker.read_text().strip()
        if have != want:
            return f"lock changed (built from {have[:12]}, lock is {want[:12]})"
        if not venv_is_complete(venv):
            return "venv incomplete"
        return None
    if explicit and venv_is_complete(venv):
        # A venv given explicitly by $CINDER_OCF_STACK_VENV (e.g. a developer's prebuilt one).
        LOG.info("using %s as given by $%s (no lock marker, not verified)", venv, VENV_ENV_VAR)
        return None
    return "no lock marker"


def _build_venv(venv: Path, lock: Path, digest: str) -> None:
    """Create *venv* (or reuse an unmarked one) and pip install the lock into it."""
    if not SYSTEM_PYTHON.exists():
        raise RuntimeError(f"{SYSTEM_PYTHON} missing: install Debian's python3 and python3-venv")
    is_venv = (venv / "pyvenv.cfg").exists()
    if venv.exists() and any(venv.iterdir()) and not is_venv:
        raise RuntimeError(f"{venv} exists and is not a virtualenv: refusing to replace it")
    if (venv / MARKER_NAME).exists():
        # Built by us from another lock: start again so no stale package survives.
        shutil.rmtree(venv)
        is_venv = False
    _makedirs_0755(venv.parent)
    t0 = time.monotonic()
    if not is_venv:
        _run([str(SYSTEM_PYTHON), "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "install", "--no-input", "-r", str(lock)])
    _run([*pip, "check"])
    if not venv_is_complete(venv):
        raise RuntimeError(f"{venv} lacks some of {REQUIRED_BINARIES} after pip install")
    # Readable and traversable by the service user the Cinder daemons run as.
    os.chmod(venv, 0o755)
    (venv / MARKER_NAME).write_text(digest + "\n")
    LOG.info("stack venv %s built in %.1f s", venv, time.monotonic() - t0)


def ensure_stack_venv(venv: Optional[Path] = None, lock: Path = LOCK_FILE) -> Path:
    """Return the stack venv, building it if missing or built from another lock.

    The venv lives at *venv*, else ``$CINDER_OCF_STACK_VENV``, else
    ``/var/tmp/cinder-ocf/stack-venv``, and carries a marker file with the lock's sha256.
    A venv without marker is accepted only if it is named (argument or
    ``$CINDER_OCF_STACK_VENV``), is not at the default path and has every command needed
    (e.g. a developer's prebuilt one).
    """
    named = venv is not None or bool(os.environ.get(VENV_ENV_VAR, "").strip())
    venv = Path(venv) if venv is not None else stack_venv_path()
    # Only a venv named explicitly, somewhere else than the default path, may lack the marker
    # (the Makefile exports the default path: that one is always ours, always verified).
    explicit = named and venv.absolute() != DEFAULT_VENV
    digest = lock_sha256(lock)
    if _venv_state(venv, digest, explicit) is None:
        return venv
    with _file_lock(venv.parent / f".{venv.name}.build-lock"):
        reason = _venv_state(venv, digest, explicit)  # another process may have built it
        if reason is not None:
            LOG.info("building stack venv %s: %s", venv, reason)
            _build_venv(venv, lock, digest)
    return venv


def debian_package_installed(name: str) -> bool:
    """True if dpkg reports *name* as installed."""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", name],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == "install ok installed"


@contextlib.contextmanager
def _services_not_started() -> Iterator[None]:
    """A policy-rc.d that denies every start (exit 101) while packages install, if none exists."""
    if POLICY_RC_D.exists():
        yield
        return
    POLICY_RC_D.write_text("#!/bin/sh\n# cinder-ocf tests: start no service on install\nexit 101\n")
    os.chmod(POLICY_RC_D, 0o755)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            POLICY_RC_D.unlink()


def ensure_debian_packages(*names: str) -> None:
    """apt-get install the packages of *names* that are missing (their services stay stopped)."""
    missing = [name for name in names if not debian_package_installed(name)]
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    t0 = time.monotonic()
    with _services_not_started():
        if not _apt_state["updated"]:
            _run(["apt-get", "update", "-q"], env=env)
            _apt_state["updated"] = True
        _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)
    LOG.info("installed %s in %.1f s", " ".join(missing), time.monotonic() - t0)


def ensure_service_user(name: str = "cinder") -> pwd.struct_passwd:
    """Return the account *name*, creating it as a system user (with its group) if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    _run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ]
    )
    return pwd.getpwnam(name)


def main() -> int:
    """Install everything the integration tests, the bench and the demo need."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if os.geteuid() != 0:
        print("run as root (apt-get, useradd)", file=sys.stderr)
        return 1
    ensure_debian_packages(*STACK_PACKAGES)
    ensure_service_user("cinder")
    venv = ensure_stack_venv()
    print(venv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
