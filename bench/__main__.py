"""`make bench` = `python -m bench [NAME ...] [--quick]`.

Starts a throw-away embedded stack (Kafka 4.1 + FerretDB, free ports, a temporary data
folder), runs the named benchmarks (all by default), prints a Markdown table and, for a
full-size run, rewrites `docs/benchmarks.md`. Benchmarks:

  runtime            outbox relay and effectively-once consumer vs raw aiokafka
  cases              the staff queue at 10,000 and 1,000,000 cases; cases opened per second
                     from a backlog of contacts vs raw aiokafka consume
  console            the staff console's queue page with 1,000,000 cases stored, p50/p95/p99
                     server time next to the cases API alone (target p95 <= 300 ms)
  intake             a burst of 10,000 contacts over HTTP (intake in its own process) vs raw
                     aiokafka produce; onboarding 1,000,000 customers vs raw aiokafka consume
                     (BENCH_INTAKE_BURST / BENCH_INTAKE_ONBOARDING=N set other sizes; they are
                     recorded with the command)
  notifications      a milestone broadcast to 20,000 owners (planning time, rate handed to SMS
                     against the configured rate); 1,000,000 customer.upserted into the
                     directory vs raw consume and raw insert (BENCH_NOTIFICATIONS_* sizes)
  surveys            the annual survey scheduled for a region of 200,000 owners vs raw store
                     bulk insert; the visit worklist p99 at 10,000 and 1,000,000 surveys
  reporting          KPI and monthly-report query p99 at 10,000 and 1,000,000 cases' worth of
                     events; the rebuild's events/s vs raw aiokafka consume of the same topics

`--quick` runs ~10x smaller sizes as a smoke test and leaves docs/benchmarks.md alone
(unless --docs is given). Benchmarks not run keep their section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import (
    cases_bench,
    console_bench,
    intake_bench,
    notifications_bench,
    reporting_bench,
    runtime,
    surveys_bench,
)
from bench.common import ROOT, Section, Stopwatch, headline_table
from bench.report import machine, write_docs

BENCHMARKS: dict[str, Callable[[Any, bool], Awaitable[Section]]] = {
    "runtime": runtime.run,
    "cases": cases_bench.run,
    "intake": intake_bench.run,
    "notifications": notifications_bench.run,
    "surveys": surveys_bench.run,
    "reporting": reporting_bench.run,
    "console": console_bench.run,
}


async def main_async(names: list[str], quick: bool) -> tuple[list[Section], dict[str, Any]]:
    from crm_contracts import topics
    from crm_devstack.pytest_plugin import start_stack
    from crm_devstack.topics import ensure_topics

    stack_info: dict[str, Any] = {}
    clock = Stopwatch()
    stack = await asyncio.to_thread(start_stack)  # it waits for Kafka with an event loop of its own
    stack_info["start_s"] = clock.s
    stack_info["backend"] = stack.backend
    clock = Stopwatch()
    await ensure_topics(stack.bootstrap, list(topics.ALL_TOPICS))
    stack_info["topics_s"] = clock.s
    stack_info["topics"] = len(topics.ALL_TOPICS)
    print(f"stack ({stack.backend}) up in {stack_info['start_s']:.1f} s: Kafka {stack.bootstrap}, "
          f"FerretDB {stack.mongodb_url}", file=sys.stderr, flush=True)
    sections = []
    try:
        for name in names:
            print(f"--- {name}{' (quick)' if quick else ''} ...", file=sys.stderr, flush=True)
            section = await BENCHMARKS[name](stack, quick)
            print("\n".join(headline_table(section.headlines)), file=sys.stderr, flush=True)
            sections.append(section)
    finally:
        clock = Stopwatch()
        for cleanup in reversed(stack._cleanup):
            cleanup()
        stack_info["stop_s"] = clock.s
    return sections, stack_info


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="~10x smaller sizes: a smoke run")
    parser.add_argument("--docs", type=Path, default=None,
                        help="where to write the results (default docs/benchmarks.md; a --quick run writes "
                             "nowhere unless this is given)")
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    logging.basicConfig(level=logging.WARNING)

    started = time.time()
    clock = Stopwatch()
    sections, stack_info = asyncio.run(main_async(names, args.quick))
    total_s = clock.s
    # Size overrides (BENCH_INTAKE_BURST=…) are part of the command: the sizes differ from the named ones.
    overrides = "".join(f"{k}={v} " for k, v in sorted(os.environ.items()) if k.startswith("BENCH_"))
    command = (overrides + "python -m bench" + "".join(f" {n}" for n in args.names)
               + (" --quick" if args.quick else ""))

    print("\n".join(headline_table([h for s in sections for h in s.headlines])))
    print()
    for s in sections:
        print(f"### {s.title} ({s.sizes}, {s.seconds:.0f} s)\n")
        print("\n".join(s.details))
        print()
    print(f"Whole run: {total_s / 60:.1f} min ({command}); stack started in {stack_info['start_s']:.1f} s.")

    docs = args.docs or (None if args.quick else ROOT / "docs" / "benchmarks.md")
    if docs is not None:
        write_docs(docs, sections, machine(), command=command, started=started, total_s=total_s,
                   stack_info=stack_info, quick=args.quick)
        print(f"wrote {docs}", file=sys.stderr)


if __name__ == "__main__":
    main()
