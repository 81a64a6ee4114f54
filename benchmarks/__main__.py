"""python -m benchmarks (make bench): measure what the agents cost, then write the reports.

Writes benchmarks/results.json and benchmarks/results.md and refreshes the README's table
between <!-- bench:start --> and <!-- bench:end -->; prints issue 10 point 8's table and every
target, met or not, with its numbers.  Run from the repository root with the
agents' virtualenv, as root.  `python -m benchmarks.report` writes the reports again from
results.json without measuring.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import report
from .measure import measure

LOG = logging.getLogger("bench")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="measured monitors per path and agent")
    parser.add_argument("--cycles", type=int, default=3, help="start/stop cycles per agent")
    parser.add_argument("--token-monitors", type=int, default=60, help="monitors for the token count")
    parser.add_argument("--agents", nargs="*", help="RPC agents to include (default: all)")
    parser.add_argument("--out", type=Path, default=report.HERE, help="where results.json/.md go")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    parser.add_argument("--note", help="a sentence about the run for results.md (the load seen, say)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        print("make bench needs root: the services run as the cinder user", file=sys.stderr)
        return 2
    results = measure(args)
    if args.note:
        results["note"] = args.note
    report.write(results, args.out, readme=not args.no_readme)
    print(report.summary_text(results))
    LOG.info("bench done in %.0f s", results["duration_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
