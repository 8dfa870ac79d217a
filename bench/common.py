"""What every benchmark shares: results, Markdown, raw aiokafka baselines, realistic data,
and the intake service run as its own process exactly as `make run` runs it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- results


@dataclass
class Headline:
    """One line of the overview table: the platform next to raw aiokafka."""

    what: str
    platform: str
    platform_rate: float
    raw: str
    raw_rate: float
    unit: str = "events/s"

    @property
    def ratio(self) -> float:
        return self.platform_rate / self.raw_rate if self.raw_rate else 0.0


@dataclass
class Section:
    name: str
    title: str
    headlines: list[Headline] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # Markdown lines
    about: str = ""
    seconds: float = 0.0
    sizes: str = ""


def per_s(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def num(value: float) -> str:
    """A rate or count for a table: thousands separated, no false precision."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def ratio_text(ratio: float) -> str:
    if ratio >= 0.1:
        return f"{ratio:.2f}"
    if ratio >= 0.001:
        return f"{ratio:.3f} (1/{1 / ratio:,.0f})"
    return f"{ratio:.5f}" if ratio else "-"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def headline_table(headlines: Iterable[Headline]) -> list[str]:
    return table(
        ["benchmark", "platform path", "platform", "raw aiokafka baseline", "raw", "ratio"],
        [(h.what, h.platform, f"{num(h.platform_rate)} {h.unit}", h.raw, f"{num(h.raw_rate)} {h.unit}",
          ratio_text(h.ratio)) for h in headlines],
    )


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def s(self) -> float:
        return time.perf_counter() - self.start


# ------------------------------------------------------------------------ raw aiokafka


async def raw_produce(bootstrap: str, topic: str, messages: Sequence[tuple[bytes, bytes]], *,
                      concurrency: int | None = None, **producer_options: Any) -> float:
    """Produce `messages` (key, value) with a plain AIOKafkaProducer; return the seconds until
    every one is acknowledged. Pipelined (send all, then wait) unless `concurrency` is given,
    in which case that many tasks each `send_and_wait` one message at a time."""
    options = {"acks": "all", "enable_idempotence": True, **producer_options}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **options)
    await producer.start()
    try:
        # One message first: metadata and the producer id are not what we measure.
        await producer.send_and_wait(topic, messages[0][1], key=messages[0][0])
        clock = Stopwatch()
        if concurrency is None:
            pending: list[asyncio.Future[Any]] = []
            for key, value in messages[1:]:
                pending.append(await producer.send(topic, value, key=key))
                if len(pending) >= 20_000:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
        else:
            it = iter(messages[1:])

            async def worker() -> None:
                for key, value in it:
                    await producer.send_and_wait(topic, value, key=key)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return clock.s
    finally:
        await producer.stop()


@dataclass
class ConsumeTiming:
    count: int
    from_start_s: float  # start() to the last message: includes joining the group
    from_first_s: float  # first message to the last: the steady rate

    @property
    def rate(self) -> float:
        return per_s(self.count, self.from_first_s)


async def raw_consume(bootstrap: str, topic: str, count: int, group: str, *, max_records: int = 500) -> ConsumeTiming:
    """Read `count` messages with a plain AIOKafkaConsumer in a consumer group, committing
    offsets by hand after each `getmany` batch (what an at-least-once consumer must do)."""
    clock = Stopwatch()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    seen = 0
    first: float | None = None
    try:
        while seen < count:
            batch = await consumer.getmany(timeout_ms=1000, max_records=max_records)
            if not batch:
                continue
            if first is None:
                first = time.perf_counter()
            seen += sum(len(records) for records in batch.values())
            await consumer.commit()
        end = time.perf_counter()
    finally:
        await consumer.stop()
    return ConsumeTiming(seen, end - clock.start, end - (first or end))


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """Each partition's end offset (the topic may be new: metadata is refreshed once)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        return dict(await consumer.end_offsets(tps)) if tps else {}
    finally:
        await consumer.stop()


async def topic_total(bootstrap: str, topic: str) -> int:
    """How many messages a (fresh) topic holds: the sum of its end offsets."""
    return sum((await end_offsets(bootstrap, topic)).values())


async def committed_total(admin: AIOKafkaAdminClient, group: str, topic: str) -> int:
    offsets = await admin.list_consumer_group_offsets(group)
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


# ------------------------------------------------------------------------ realistic data

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
            "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
# Roughly by frequency: the first surnames are far more common (王, 李, 张 are ~7 % each).
SURNAME_WEIGHTS = [max(1.0, 70 / (i + 1) ** 0.8) for i in range(len(SURNAMES))]
DOUBLE_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫")
GIVEN = ("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉建国建华志强海燕雪梅晓东"
         "晨宇浩然子涵梓萱欣怡一诺雨桐思远嘉怡俊杰文博天佑佳琪若曦宇轩子墨诗涵家豪嘉欣晓峰丽娟春梅海波永刚"
         "婷婷慧敏国强立新德华振宇凯琳美玲志明文静淑珍秀梅丹丹亚楠梦瑶泽宇皓轩欣妍语嫣沐阳")
MOBILE_PREFIXES = ("130 131 132 133 134 135 136 137 138 139 150 151 152 153 155 156 157 158 159 166 170 "
                   "171 173 175 176 177 178 180 181 182 183 184 185 186 187 188 189 191 193 195 198 199").split()
PROJECTS = ("碧水湾 龙华悦府 滨海花园 金域蓝湾 翡翠城 云山墅 锦绣江南 紫御华府 万象天成 星河丹堤 观澜湖 "
            "半山御景 幸福里 春华四季园 鹿丹村 香蜜湖一号 天悦湾 中央公园 东方花园 融科天城 城市之光 "
            "时代广场 海德公馆 桃源居 四季花城 万科城 前海天境 南山书院 湖畔雅苑 丽水佳园").split()
EMAIL_DOMAINS = ("qq.com", "163.com", "126.com", "sina.com", "foxmail.com", "outlook.com", "gmail.com")


def chinese_name(rng: random.Random) -> str:
    surname = rng.choice(DOUBLE_SURNAMES) if rng.random() < 0.01 else rng.choices(SURNAMES, SURNAME_WEIGHTS)[0]
    given_len = 1 if rng.random() < 0.3 else 2
    return surname + "".join(rng.choice(GIVEN) for _ in range(given_len))


def mobile(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(100_000_000):08d}"


def unit_of(rng: random.Random) -> tuple[str, str, str]:
    return rng.choice(PROJECTS), str(rng.randint(1, 32)), f"{rng.randint(1, 33)}{rng.randint(1, 4):02d}"


# ------------------------------------------------------------------ the intake service


def free_port() -> int:
    from crm_devstack.servers import free_port as _free_port

    return _free_port()


@contextlib.asynccontextmanager
async def intake_process(stack: Any, *, suffix: str, group: str, secret: str,
                         extra_env: dict[str, str] | None = None) -> AsyncIterator[tuple[str, Path]]:
    """Run intake as `make run` does (`uvicorn --factory intake.bootstrap:create_app
    --no-access-log`, INFO logs) in its own process, on a fresh database and consumer
    group; yield its base URL and its log file once /health/ready says ok."""
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="bench-intake-", suffix=".log")[1])
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "MONGODB_URL": stack.mongodb_url,
           "CRM_DATABASE_SUFFIX": suffix, "CRM_CONSUMER_GROUP": group, "CRM_JWT_SECRET": secret,
           **(extra_env or {})}
    command = [sys.executable, "-m", "uvicorn", "--factory", "intake.bootstrap:create_app",
               "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=3) as client:
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"intake exited with {proc.returncode}: {log_path.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/health/ready")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"intake not ready after 90 s: {log_path.read_text()[-3000:]}")
                await asyncio.sleep(0.3)
        yield base, log_path
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
