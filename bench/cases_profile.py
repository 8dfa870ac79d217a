"""Where the time of opening cases goes: store commands by command and collection (a
PyMongo command listener in the benchmark's process, which runs the cases service), the
batch handler's store steps (timed by patching them for the run), and CPU per process."""

from __future__ import annotations

import contextvars
import os
import time
from collections import Counter, defaultdict
from typing import Any

from cases.adapters import batch_store, bulk
from cases.adapters.batch_store import ContactBatchStore
from cases.adapters.queue import PART_ROWS
from cases.entrypoints import kafka as cases_kafka
from pymongo import monitoring


class StoreCommands(monitoring.CommandListener):
    """Commands sent to one database, by command and collection (a PyMongo listener: it
    sees every client created after it is registered, the service's included)."""

    def __init__(self, database: str):
        self.database = database
        self.counts: Counter[tuple[str, str]] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name == self.database:
            target = event.command.get(event.command_name)
            self.counts[(event.command_name, target if isinstance(target, str) else "-")] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def rows(self, per: int, top: int = 14) -> list[tuple[str, str, str]]:
        by_collection: Counter[str] = Counter()
        for (command, collection), n in self.counts.items():
            by_collection[f"{command} {collection}"] += n
        rows = [(name, f"{n:,}", f"{n / per:.3f}") for name, n in by_collection.most_common(top)]
        rest = sum(n for _, n in by_collection.most_common()[top:])
        if rest:
            rows.append(("(others)", f"{rest:,}", f"{rest / per:.3f}"))
        total = sum(by_collection.values())
        rows.append(("**all commands**", f"{total:,}", f"**{total / per:.2f}**"))
        return rows


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def ferretdb_pid(stack: Any) -> int | None:
    port = stack.mongodb_url.rsplit(":", 1)[1].strip("/")
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f"--listen-addr=127.0.0.1:{port}\0".encode() in f.read():
                        return int(entry)
            except OSError:
                continue
    return None


def cpu_sample(pids: dict[str, int | None]) -> dict[str, float]:
    times = os.times()
    return {"cases service (this process)": times.user + times.system,
            **{name: cpu_seconds(pid) for name, pid in pids.items()}}


_STEP: contextvars.ContextVar[str | None] = contextvars.ContextVar("bench_step", default=None)


class Phases:
    """Wall time of the batch handler and of each of its store steps (patched in for the
    run). A step called inside another is shown as part of it (`insert_cases › _queue`);
    steps run side by side (the customers' open cases and the collective facts) each show
    their own time, and the handler's time outside every step is the union's complement:
    the domain's CPU, the revision-checked changes of cases stored before the batch, the
    incidents."""

    STEPS = ("contacts", "record_arrivals", "list_new_customers", "open_cases_of", "cases", "numbers_for",
             "fact_buckets", "insert_cases", "list_under_customers", "schedule_sla", "add_facts", "place_work",
             "store_handled", "_queue")

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.spans: list[tuple[float, float]] = []  # top-level steps, for their union
        self.batches: list[int] = []
        self.first_at: float | None = None
        self.docs: list[dict[str, Any]] = []
        self._undo: list[tuple[Any, str, Any]] = []

    def _patch(self, owner: Any, name: str, new: Any) -> None:
        self._undo.append((owner, name, getattr(owner, name)))
        setattr(owner, name, new)

    def _timed(self, name: str, original: Any) -> Any:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            outer = _STEP.get()
            token = _STEP.set(name if outer is None else f"{outer} › {name}")
            t = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                end = time.perf_counter()
                self.seconds[_STEP.get() or name] += end - t
                _STEP.reset(token)
                if outer is None:
                    self.spans.append((t, end))
        return timed

    def install(self) -> None:
        for step in self.STEPS:
            self._patch(ContactBatchStore, step, self._timed(step, getattr(ContactBatchStore, step)))
        self._patch(batch_store, "insert_with_outbox", self._timed("insert_with_outbox", batch_store.insert_with_outbox))
        handler = cases_kafka.on_contacts_received

        async def handle(deps: Any, store: Any, items: Any) -> Any:
            t = time.perf_counter()
            self.first_at = self.first_at or t
            try:
                return await handler(deps, store, items)
            finally:
                self.seconds["handler"] += time.perf_counter() - t
                self.batches.append(len(items))
        self._patch(cases_kafka, "on_contacts_received", handle)
        keep = bulk.new_document_with_outbox

        def kept(document: dict[str, Any], events: Any) -> dict[str, Any]:
            doc = keep(document, events)
            self.docs.append(doc)
            return doc
        self._patch(bulk, "new_document_with_outbox", kept)

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)

    def _in_steps(self) -> float:
        total, end = 0.0, float("-inf")
        for a, b in sorted(self.spans):
            if b > end:
                total += b - max(a, end)
                end = b
        return total

    def rows(self, window_s: float) -> list[tuple[str, str, str]]:
        def row(name: str, seconds: float) -> tuple[str, str, str]:
            return name, f"{seconds:.1f}", f"{seconds / window_s:.0%}"

        top = sorted((n for n in self.seconds if n != "handler" and " › " not in n), key=lambda n: -self.seconds[n])
        rows = []
        for name in top:
            if self.seconds[name] >= 0.05:
                rows.append(row(f"store: {name}", self.seconds[name]))
                rows += [row(f"… {inner}", self.seconds[inner]) for inner in sorted(self.seconds)
                         if inner.startswith(f"{name} › ") and self.seconds[inner] >= 0.05]
        outside = self.seconds["handler"] - self._in_steps()
        rows.append(row("handler, outside every store step (domain CPU, changes to stored cases, incidents)", outside))
        rows.append(row("**handler in all**", self.seconds["handler"]))
        rows.append(row("outside the handler (Kafka fetch and commit, waiting)", window_s - self.seconds["handler"]))
        return rows


def _per_case(counts: Counter[tuple[str, str]], command: str, collection: str, count: int) -> float:
    return counts.get((command, collection), 0) / max(count, 1)


def what_moved(phases: Phases, window_s: float, cpu: dict[str, float], counts: Counter[tuple[str, str]],
               count: int, *, met: bool) -> list[str]:
    """What changed the opening since 156.5/s (1.42 commands per case, 2 December 07:49 UTC)
    and before that since 124.8/s, with this run's commands, and what the remaining time is
    spent on."""
    steps = sorted(((name, sec) for name, sec in phases.seconds.items() if name != "handler" and " › " not in name),
                   key=lambda item: -item[1])[:3]
    biggest = ", ".join(f"{name.removeprefix('_')} {sec / window_s:.0%}" for name, sec in steps)
    ferret = cpu.get("FerretDB", 0.0) / window_s
    total = sum(counts.values()) / max(count, 1)
    return [
        "What moved it since 156.5/s (63.9 s, 1.42 store commands per case, 2 December 07:49 UTC): the outbox "
        "relay is handed the cases a batch inserts, with their events, instead of reading each back to publish "
        f"them (`find cases` 0.49 per case then, {_per_case(counts, 'find', 'cases', count):.2f} now; a case "
        "written again since its insert is read as before); a batch takes the collective-fact buckets it files "
        "under from what its process wrote last instead of reading them, and does not read again, before "
        "creating it, a bucket it found absent (`find collective_facts` 0.79 per case then, "
        f"{_per_case(counts, 'find', 'collective_facts', count):.2f} now; another replica's write since is "
        "caught by the revision claim, and the facts filed there detected again). In all "
        f"{total:.2f} store commands per case.",
        "",
        "Before that (from 124.8/s, 3.98 store commands per case): the contact is stored once, handled, by an "
        "insert at the end of its batch (a tiny arrival record inserted first says whether it was seen before), "
        "instead of inserted first and rewritten last; each customer's index is inserted with the cases the batch "
        "opens for them, so only customers who had one are read; a backlog's due hour is held in parts of about "
        f"{PART_ROWS} rows, so a batch no longer rewrites every queue row placed before it; no second outbox marker "
        "per case (all duplicates, which FerretDB inserts one at a time); no re-read of the revisions of shared "
        "documents once claimed; a matter's bucket of a day not begun read only if a writer listed it (a contact "
        "stamped in the future); each fact packed in one string in its bucket (FerretDB's cost of a document grows "
        "with the values in it); the business calendar's holiday table cached instead of scanned per day of every "
        "SLA clock.",
        "",
        f"{'Met' if met else 'Not met'}: FerretDB busy {ferret:.2f} of a core; the largest steps left: {biggest}. "
        "Of the collective facts, every batch still reads each matter's bucket of the day before (absent in this "
        "backlog, whose contacts are all of today, yet a read per matter and batch: FerretDB answers `$in` by "
        "reading the whole collection, and a bucket this process never wrote is not its to remember) and rewrites "
        "each matter's bucket of the day once; the outbox relay still rewrites every new case once to clear its "
        f"events (`update cases` {_per_case(counts, 'update', 'cases', count):.3f} per case, in bulk).",
    ]
