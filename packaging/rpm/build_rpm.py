#!/usr/bin/python3
"""Build the cinder-ocf RPM and source RPM from the working tree: what `make rpm` runs.

Usage: build_rpm.py [--outdir DIR] [--no-lint]

1. copies the working tree (without .git, build/, dist/, *.egg-info, caches) to a scratch
   directory, so the source tree gets no build/ or egg-info and uncommitted edits are built;
2. makes the sdist there with the system's setuptools (`setup.py sdist` semantics: works with
   setuptools 53 on RHEL 9 and 66 on Debian 12, needs neither python3-build nor the network);
3. runs rpmbuild -ba on packaging/rpm/cinder-ocf.spec with that sdist and tools/ocf_manpage.py
   (--nodeps on Debian, whose rpm database knows none of the BuildRequires);
4. leaves DIR/RPMS/noarch/*.rpm and DIR/SRPMS/*.src.rpm (default DIR: dist/rpm) and runs
   rpmlint on both with packaging/rpm/cinder-ocf.rpmlintrc: any error fails the build.

Only the standard library: run it with the distribution's /usr/bin/python3.  The scratch
directory is removed whatever happens.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SPEC = HERE / "cinder-ocf.spec"
RPMLINTRC = HERE / "cinder-ocf.rpmlintrc"
MANPAGE_TOOL = ROOT / "tools" / "ocf_manpage.py"
PYTHON = "/usr/bin/python3"
# What never goes into the sdist's source copy: VCS data, build products, caches.
IGNORED = (".git", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".*cache", ".tox", ".venv")
DEBIAN = Path("/etc/debian_version").exists()
# The tools' environment: Debian's interpreter, not a pyenv shim or the test virtualenv.
TOOLS_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BuildError(Exception):
    pass


def project_version() -> str:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    return cfg["metadata"]["version"]


def spec_field(name: str) -> str:
    match = re.search(rf"^{name}:\s*(\S+)\s*$", SPEC.read_text(encoding="utf-8"), re.MULTILINE)
    if not match:
        raise BuildError(f"{SPEC}: no {name}: line")
    return match.group(1)


def run(argv: Sequence[str], cwd: Path, env: dict, quiet: bool = False) -> str:
    proc = subprocess.run(
        list(argv), check=False, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}")
    if not quiet:
        sys.stdout.write(proc.stdout)
    return proc.stdout


def tool_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_"))}
    # No PYTHONDONTWRITEBYTECODE: setup.py install -O1 would then skip the byte-compilation.
    env.update(PATH=TOOLS_PATH, LC_ALL="C.UTF-8")
    return env


def make_sdist(scratch: Path, sources: Path, version: str, env: dict) -> Path:
    tree = scratch / "tree"
    shutil.copytree(ROOT, tree, symlinks=True, ignore=shutil.ignore_patterns(*IGNORED))
    # setup.py sdist with setup.cfg's metadata; no setup.py in the project, so pass one inline.
    run([PYTHON, "-c", "from setuptools import setup; setup()", "-q", "sdist", "--formats=gztar",
         "--dist-dir", str(sources)], tree, env, quiet=True)  # fmt: skip
    sdist = sources / f"cinder-ocf-{version}.tar.gz"
    if not sdist.is_file():
        made = ", ".join(p.name for p in sources.iterdir()) or "nothing"
        raise BuildError(f"expected {sdist.name} from setup.py sdist, got {made}")
    return sdist


def rpmbuild(scratch: Path, sources: Path, outdir: Path, env: dict) -> None:
    args = ["rpmbuild", "-ba", "--define", f"_topdir {scratch / 'rpmbuild'}",
            "--define", f"_sourcedir {sources}", "--define", f"_rpmdir {outdir / 'RPMS'}",
            "--define", f"_srcrpmdir {outdir / 'SRPMS'}", "--define", f"_tmppath {scratch}"]  # fmt: skip
    if DEBIAN:
        # Debian's rpm database is empty: BuildRequires would all count as missing.
        args.append("--nodeps")
    run([*args, str(SPEC)], ROOT, env, quiet=True)


def built_packages(outdir: Path, version: str) -> List[Path]:
    rpms = sorted((outdir / "RPMS").glob(f"noarch/cinder-ocf-{version}-*.noarch.rpm"))
    srpms = sorted((outdir / "SRPMS").glob(f"cinder-ocf-{version}-*.src.rpm"))
    if len(rpms) != 1 or len(srpms) != 1:
        raise BuildError(f"expected one RPM and one source RPM in {outdir}, found {rpms + srpms}")
    return [rpms[0], srpms[0]]


def rpmlint(packages: Sequence[Path], env: dict) -> str:
    """rpmlint's report; BuildError when it finds an error (exit 64) or crashes."""
    args = ["rpmlint", "-r", str(RPMLINTRC)]
    if not DEBIAN:
        # The filters are for Debian's rpmlint defaults; Fedora's config already passes some of
        # them, and rpmlint 2 reports a filter that matches nothing as an error.
        args.append("--ignore-unused-rpmlintrc")
    proc = subprocess.run(
        [*args, *map(str, packages)],
        check=False, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    summary = re.search(r"(\d+) errors?, (\d+) warnings?", proc.stdout)
    if proc.returncode != 0 or not summary or summary.group(1) != "0":
        raise BuildError(f"rpmlint failed ({proc.returncode}):\n{proc.stdout}")
    return proc.stdout


def remove_old(outdir: Path) -> None:
    """Earlier builds' cinder-ocf packages only: DIR may hold other files."""
    for old in [*outdir.glob("RPMS/noarch/cinder-ocf-*.rpm"), *outdir.glob("SRPMS/cinder-ocf-*.src.rpm")]:
        old.unlink()


def build(outdir: Path, lint: bool = True) -> List[Path]:
    version = project_version()
    if spec_field("Version") != version:
        raise BuildError(
            f"{SPEC.name} says Version: {spec_field('Version')} but setup.cfg says {version}: "
            "update the spec (Version, Release 1, a %changelog entry)"
        )
    for tool in ("rpmbuild", "rpmlint") if lint else ("rpmbuild",):
        if shutil.which(tool, path=TOOLS_PATH) is None:
            raise BuildError(f"{tool} not found: run `make deps` (Debian packages rpm, rpmlint)")
    outdir.mkdir(parents=True, exist_ok=True)
    remove_old(outdir)
    scratch = Path(tempfile.mkdtemp(prefix="cinder-ocf-rpm-"))
    try:
        env = dict(tool_env(), TMPDIR=str(scratch))
        sources = scratch / "SOURCES"
        sources.mkdir()
        make_sdist(scratch, sources, version, env)
        shutil.copy2(MANPAGE_TOOL, sources / "ocf_manpage.py")
        rpmbuild(scratch, sources, outdir, env)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    packages = built_packages(outdir, version)
    if lint:
        sys.stdout.write(rpmlint(packages, tool_env()))
    return packages


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--outdir", type=Path, default=ROOT / "dist" / "rpm",
                        help="where RPMS/ and SRPMS/ go (default: dist/rpm)")  # fmt: skip
    parser.add_argument("--no-lint", action="store_true", help="skip rpmlint")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        packages = build(args.outdir.resolve(), lint=not args.no_lint)
    except BuildError as err:
        print(f"build_rpm: {err}", file=sys.stderr)
        return 1
    for package in packages:
        print(package)
    print(f"build_rpm: done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
