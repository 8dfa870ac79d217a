"""`reporting rebuild`: replay every topic from the beginning into a fresh generation of
read models, with a progress bar, and switch the API over once it has caught up.

Each generation has its own consumer group (`crm-reporting` for g1, `crm-reporting-g2`
...), so each generation's documents have one writer per partition. After the switch the
command keeps the new generation current until it is stopped (`--follow`); the running
service notices the switch within a second and follows the new generation in its group,
taking the partitions over from where the command committed (no restart).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from crm_runtime.mongo import create_client
from tqdm import tqdm

from reporting.adapters.store import ReadModels, next_generation
from reporting.entrypoints.replay import Replay
from reporting.settings import ReportingSettings


@dataclass
class RebuildResult:
    generation: str
    previous: str
    events: int
    skipped: int
    seconds: float
    switched: bool

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def rebuild(settings: ReportingSettings, *, generation: str | None = None, progress: bool = True,
                  follow_s: float = 0.0, max_records: int = 2000, switch: bool = True,
                  flush_s: float = 5.0, max_entities: int = 250_000) -> RebuildResult:
    """Replay into `generation` (default: the one after the active one); store and switch
    when the lag is 0; then keep following for `follow_s` seconds (forever if negative),
    storing and committing every `flush_s`. `max_entities`: how many entities are held in
    memory before some are stored and let go."""
    mongo = create_client(settings.mongodb_url, app_name="crm-reporting-rebuild")
    models = ReadModels(mongo[settings.database_name])
    previous = (await models.pointer())["generation"]
    name = generation or next_generation(previous)
    await models.generation(name).drop()  # fresh read models, read from the first offset
    await models.generation(name).start_rollups()  # kept with roll-ups from its start
    replay = Replay(settings, models, name, fresh=True, max_records=max_records, client_id="crm-reporting-rebuild",
                    max_entities=max_entities)
    await replay.start()
    started = time.monotonic()
    events = 0
    switched = False
    bar = tqdm(total=0, unit="ev", unit_scale=True, desc=f"rebuild {name}", disable=not progress,
               smoothing=0.1, dynamic_ncols=True)
    try:
        await models.meta.replace_one({"_id": "rebuild"}, {
            "_id": "rebuild", "generation": name, "previous": previous, "state": "replaying",
            "started_at": datetime.now(UTC).isoformat()}, upsert=True)
        bar.total = sum((await replay.end_offsets()).values())
        follow_until: float | None = None
        flushed_at = time.monotonic()
        while True:
            n = await replay.step()
            events += n
            bar.update(n)
            if switched and (not n or time.monotonic() - flushed_at >= flush_s):
                await replay.flush()
                flushed_at = time.monotonic()
                if switch and (await models.pointer())["generation"] != name:
                    break  # a later rebuild switched away: this generation is written no more
            if not switched and not n and await replay.caught_up():
                await replay.flush()  # everything stored (and committed) before anyone reads it
                replay.gen.fresh = False  # from now on a follower: stored and committed as it goes
                if switch:
                    await models.switch(name, previous=previous, switched_at=datetime.now(UTC).isoformat())
                    await models.meta.update_one({"_id": "rebuild"}, {"$set": {"state": "switched"}})
                switched = True
                follow_until = time.monotonic() + follow_s if follow_s >= 0 else None
                bar.set_postfix_str("caught up: switched" if switch else "caught up")
                gc.unfreeze()
            if switched and follow_until is not None and time.monotonic() >= follow_until:
                break
            if not switched and not n:
                bar.total = max(bar.total or 0, sum((await replay.end_offsets()).values()))
                bar.refresh()
    except BaseException as exc:
        if not switched:  # say so where `replaying` was written: the API stays on `previous`
            stopped = isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)
            with contextlib.suppress(Exception):
                await models.meta.update_one({"_id": "rebuild", "generation": name}, {"$set": {
                    "state": "stopped" if stopped else "failed", "ended_at": datetime.now(UTC).isoformat(),
                    "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}})
        raise
    finally:
        bar.close()
        await replay.stop()
        await mongo.close()
    return RebuildResult(name, previous, events, replay.skipped, time.monotonic() - started, switched)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reporting", description="Reporting's operations.")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("rebuild", help="replay every topic into fresh read models and switch over")
    cmd.add_argument("--generation", help="name of the new generation (default: the next one)")
    cmd.add_argument("--follow", type=float, default=-1,
                     help="seconds to keep following after the switch (default: until Ctrl-C)")
    cmd.add_argument("--no-switch", action="store_true", help="replay only; leave the API where it is")
    args = parser.parse_args(argv)
    settings = ReportingSettings()
    try:
        result = asyncio.run(rebuild(settings, generation=args.generation, follow_s=args.follow,
                                     switch=not args.no_switch))
    except KeyboardInterrupt:
        print("stopped")
        return
    print(f"generation {result.generation} (was {result.previous}): {result.events} events in "
          f"{result.seconds:.1f}s ({result.events_per_s:.0f}/s), {result.skipped} not of the contract, "
          f"{'switched' if result.switched else 'not switched'}")
