"""Shared parts of the `intake` benchmark: its constants, Kafka and store helpers."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from crm_contracts import topics

from bench.common import (
    end_offsets,
    table,
)
from bench.profile import CpuMeter

SECRET = "bench-intake-secret-of-at-least-thirty-two-bytes"
CONTACT_RECEIVED = "crm.intake.contact.received.v1"
CUSTOMER_UPSERTED = "crm.partner.customer.upserted.v1"
CONCURRENCY = 50
FULL_BURST, FULL_ONBOARDING = 10_000, 1_000_000
# The regions of the burst and of the archive, roughly by size.
REGIONS = ["shenzhen", "shanghai", "beijing", "chengdu", "hangzhou"]
REGION_WEIGHTS = [35, 25, 20, 12, 8]
# Topics intake's consumer group reads: a fresh group starts at their current ends, so
# whatever earlier benchmarks of the same stack left there is not part of the measurement.
INTAKE_TOPICS = (topics.PARTNER_CUSTOMERS, topics.PARTNER_HOTLINE, topics.PARTNER_FORUM, topics.PARTNER_UNITS)

# (kind, subject, body); {place} is the project, building and unit.
CONTACT_TEXTS = [
    ("卫生间天花板漏水", "{place}卫生间天花板漏水，已经三天了，楼上邻居不在家，请尽快派人维修。"),
    ("地下车库照明不亮", "{place}业主反映地下车库B2层照明长期不亮，晚上停车很不安全，希望物业尽快处理。"),
    ("咨询交房时间", "请问{place}的交房时间是什么时候？需要准备哪些材料，是否可以委托家人办理？"),
    ("建议增加充电桩", "建议小区增加新能源汽车充电桩，目前车位紧张，{place}业主希望物业统一规划。"),
    ("楼上装修噪音", "{place}楼上装修每天早上七点就开始电钻，严重影响老人和孩子休息，投诉多次无人处理。"),
    ("表扬保安", "感谢小区保安李师傅，昨晚帮助{place}的老人把行李搬上楼，服务非常热情，特此表扬。"),
    ("电梯频繁故障", "{place}所在楼栋电梯本月已经故障三次，有一次困人二十分钟，要求彻底检修并给出说明。"),
    ("外墙瓷砖脱落", "{place}外墙瓷砖脱落，砸坏了楼下停放的车辆，存在严重安全隐患，请立即处理。"),
    ("物业费收费标准", "咨询{place}物业费的收费标准，为什么今年比去年上涨了，有没有公示文件？"),
    ("窗户渗水", "{place}主卧窗户密封不严，下雨就渗水，墙面已经发霉，要求开发商保修期内维修。"),
    ("门禁卡无法使用", "{place}的门禁卡突然无法使用，去物业中心补办说要等一周，希望加快办理。"),
    ("垃圾清运不及时", "小区垃圾站清运不及时，{place}附近气味很大，夏天蚊虫多，请增加清运次数。"),
]
LETTER_FORMS = ["post", "fax", "email"]
EMAIL_NAMES = ("wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu", "sun", "ma")
EMAIL_DOMAINS = ("qq.com", "163.com", "126.com", "sina.com", "foxmail.com", "outlook.com")


def code_under_test() -> str:
    """Which code ran: the commit, and whether services/ or libs/ differed from it."""
    import subprocess

    import intake

    from bench.common import ROOT

    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip() or "?"
    if not os.path.realpath(intake.__file__).startswith(str(ROOT) + os.sep):
        return f"services/ and libs/ of commit {head}, exported (`git archive`) and put first on PYTHONPATH"
    dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--", "services", "libs"]).returncode
    return f"commit {head}" + (" with uncommitted changes in services/ or libs/" if dirty else "")


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] intake: {message}", file=sys.stderr, flush=True)


def size_from_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value.replace("_", "")) if value else default


# ------------------------------------------------------------------------ Kafka helpers


async def start_group_at_end(bootstrap: str, group: str, topic_names: tuple[str, ...]) -> dict[str, int]:
    """Commit a fresh group's offsets at the current end of `topic_names`, so it reads only
    what is produced from now on (its consumers otherwise start from the earliest offset).
    Returns each topic's total end offset."""
    ends: dict[TopicPartition, int] = {}
    for name in topic_names:
        ends.update(await end_offsets(bootstrap, name))
    to_commit = {tp: OffsetAndMetadata(offset, "") for tp, offset in ends.items() if offset > 0}
    if to_commit:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(list(to_commit))
            await consumer.commit(to_commit)
        finally:
            await consumer.stop()
    return {name: sum(o for tp, o in ends.items() if tp.topic == name) for name in topic_names}


async def read_range(bootstrap: str, start: dict[TopicPartition, int],
                     end: dict[TopicPartition, int]) -> list[tuple[bytes, bytes]]:
    """Every (key, value) between two sets of offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    out: list[tuple[bytes, bytes]] = []
    try:
        wanted = [tp for tp in end if end[tp] > start.get(tp, 0)]
        if not wanted:
            return out
        consumer.assign(wanted)
        for tp in wanted:
            consumer.seek(tp, start.get(tp, 0))
        remaining = {tp: end[tp] - start.get(tp, 0) for tp in wanted}
        while any(v > 0 for v in remaining.values()):
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < end[tp]:
                        out.append((record.key or b"", record.value or b""))
                        remaining[tp] -= 1
        return out
    finally:
        await consumer.stop()


async def ferret_commands(client: Any) -> Counter[str]:
    """FerretDB's per-command counters (serverStatus.metrics.commands): round trips."""
    status = await client.admin.command("serverStatus")
    return Counter({name: c.get("total", 0) for name, c in status.get("metrics", {}).get("commands", {}).items()})


def command_rows(before: Counter[str], after: Counter[str], per: int, what: str) -> list[str]:
    diff = after - before
    main = [c for c in ("find", "insert", "update", "delete", "aggregate", "count") if diff[c]]
    other = sum(v for c, v in diff.items() if c not in main)
    rows = [(c, f"{diff[c]:,}", f"{diff[c] / per:.2f}") for c in main]
    rows.append(("all commands" + (f" (incl. {other:,} others)" if other else ""), f"{sum(diff.values()):,}",
                 f"{sum(diff.values()) / per:.2f}"))
    return table(["FerretDB command", "count", f"per {what}"], rows)


def intake_meter(stack: Any, group: str) -> CpuMeter:
    """CPU of intake (found by its consumer group once it runs), FerretDB, Kafka, this process."""
    return CpuMeter(stack, service=("intake (uvicorn)", lambda c, e: b"intake.bootstrap:create_app" in c
                                    and f"CRM_CONSUMER_GROUP={group}\0".encode() in e + b"\0"))


def log_summary(log_path: Any) -> str:
    """What intake's own log says went wrong (warnings and worse), counted by message."""
    counts: Counter[str] = Counter()
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "intake's log could not be read"
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("level") in ("WARNING", "ERROR", "CRITICAL"):
            message = " ".join(str(record.get("message", "")).split())
            counts[f"{record['level']} {message[:90]}"] += 1
    if not counts:
        return f"intake's log ({len(lines):,} lines): no warnings or errors."
    return (f"intake's log ({len(lines):,} lines), warnings and errors: "
            + "; ".join(f"{c:,} × `{m}`" for m, c in counts.most_common(6)) + ".")


# -------------------------------------------------------------------------------- burst
