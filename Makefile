# Every target installs what it needs (tools/install-deps): a fresh Debian 12 machine, as root,
# needs nothing else.
VENV ?= /var/tmp/cinder-ocf/venv
export VENV
export CINDER_OCF_STACK_VENV ?= /var/tmp/cinder-ocf/stack-venv
PYTEST_ARGS ?=
PY39_PYTEST_ARGS ?=
BENCH_ARGS ?=
# The unit tests run in parallel (pytest-xdist): each one mostly waits on an agent process or a
# fake service of its own (free ports, own directories), so 4 workers fill 2 cores.  The
# integration and cluster tests share one stack on fixed ports and one set of namespaces: serial.
UNIT_WORKERS ?= 4
export UNIT_WORKERS

.PHONY: deps demo test unit py39 lint clean readme rpm bench

deps:
	./tools/install-deps

# All the project's Python: the product, the lab, its users, the tools (update-readme is
# Python without the suffix, so it is named).
LINTED = src lab tests benchmarks tools tools/update-readme

lint: deps
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy

## demo: a real two-node Pacemaker cluster keeping a real cinder-api available through failures
## (lab/demo.py, run as a module from the root, where the lab package is)
demo: deps
	$(VENV)/bin/python -m lab.demo

## test: lint, the unit tests on Python 3.9 with the minimum library versions (py39), then unit
## tests, integration tests with the real services, ocf-tester, cluster tests
test: lint py39
	$(VENV)/bin/python -m pytest -ra -n $(UNIT_WORKERS) $(PYTEST_ARGS) tests/unit
	$(VENV)/bin/python -m pytest -ra $(PYTEST_ARGS) --ignore=tests/unit tests

## unit: the fast tests only (no services, no cluster)
unit: deps
	$(VENV)/bin/python -m pytest -ra -n $(UNIT_WORKERS) $(PYTEST_ARGS) tests/unit

## py39: the unit tests on the oldest stack setup.cfg claims (RHEL 9): Python 3.9 with
## tests/constraints-min.txt, in /var/tmp/cinder-ocf/venv-py39 (tools/py39-lane); says SKIPPED
## and passes where the machine has no Python 3.9
py39: deps
	./tools/py39-lane $(PY39_PYTEST_ARGS)

## bench: what the agents cost (monitor time, CPU, memory, Keystone requests, start/stop) against
## the real services, beside the 2013 shell agent; writes benchmarks/results.md and .json and the
## README's table.  Not a test: it prints numbers.  Run it on a quiet machine.
bench: deps
	$(VENV)/bin/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf build dist src/*.egg-info .pytest_cache .ruff_cache

## readme: regenerate the README's parameter reference from the agents' meta-data
readme: deps
	$(VENV)/bin/python tools/update-readme

## rpm: the noarch RPM and source RPM (packaging/rpm/cinder-ocf.spec) built from the working
## tree's sdist into dist/rpm/RPMS/noarch and dist/rpm/SRPMS; fails if rpmlint reports an error
rpm: deps
	/usr/bin/python3 packaging/rpm/build_rpm.py --outdir dist/rpm
