"""Letters: each region's letters of a day are collected into one print batch, rendered as
one PDF (a page per letter) that the print room prints and posts.

``add`` appends a letter to its region's batch for today (Beijing time) in a spool: by
default a JSON-lines file per region and day under ``letters_dir``, flushed to disk before
``add`` returns; the core can give a Mongo-backed :class:`LetterSpool` instead. Adding the
same ledger id twice keeps one letter. ``render`` writes ``<letters_dir>/<region>/<day>.pdf``.

Chinese text is set in WenQuanYi Micro Hei (文泉驿微米黑, shipped on PyPI by
``paperang-p2-fonts-cjk``), embedded as a subset in every PDF, so the batch prints the same
on any machine. The full address is on the page; logs only ever get :func:`mask_address`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from fpdf import FPDF

from notifications.adapters.gateways import OutboundMessage, SendResult

log = logging.getLogger(__name__)

BEIJING = ZoneInfo("Asia/Shanghai")
_REGION = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Administrative levels a masked address keeps: province, city, district or county.
_ADMIN = re.compile(r"(?:省|自治区|市|特别行政区|区|县|旗)")


def default_font_path() -> Path:
    return Path(str(resources.files("paperang_p2_fonts_cjk") / "fonts" / "wqy-microhei.ttc"))


def mask_address(address: str) -> str:
    """``广东省深圳市南山区科技园路1号3栋1201`` → ``广东省深圳市南山区****``; an address in Latin
    letters keeps only its last part (the city): ``****, Shenzhen``."""
    address = address.strip()
    if not address:
        return address
    if address.isascii():
        parts = [p.strip() for p in address.split(",") if p.strip()]
        return f"****, {parts[-1]}" if len(parts) > 1 else "****"
    keep = 0
    for m in _ADMIN.finditer(address[:16]):
        keep = m.end()
    return (address[:keep] or address[:2]) + "****"


class LetterSpool(Protocol):
    """Where a day's letters wait for their batch; append must be durable when it returns."""

    async def append(self, region: str, day: date, letter: dict[str, Any]) -> bool:
        """Store a letter; False when one with its message_id is already there."""
        ...

    async def read(self, region: str, day: date) -> list[dict[str, Any]]: ...

    async def batches(self) -> list[tuple[str, date]]:
        """Every (region, day) that has letters."""
        ...


class JsonlLetterSpool:
    """One JSON-lines file per region and day; a person can read it, a restart loses nothing.
    One process writes it (the ids already in a file are kept in memory); several replicas
    share a Mongo-backed spool instead."""

    def __init__(self, letters_dir: Path):
        self.letters_dir = Path(letters_dir)
        self._lock = asyncio.Lock()
        self._ids: dict[Path, set[str]] = {}

    def path(self, region: str, day: date) -> Path:
        return self.letters_dir / region / f"{day.isoformat()}.jsonl"

    def _read(self, path: Path) -> list[dict[str, Any]]:
        if not path.exists():
            return []
        letters: dict[str, dict[str, Any]] = {}
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    letter = json.loads(line)
                    letters.setdefault(letter["message_id"], letter)  # the first copy wins
        return list(letters.values())

    def _append(self, path: Path, letter: dict[str, Any]) -> bool:
        ids = self._ids.get(path)
        if ids is None:
            ids = self._ids[path] = {existing["message_id"] for existing in self._read(path)}
        if letter["message_id"] in ids:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(letter, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        ids.add(letter["message_id"])
        return True

    async def append(self, region: str, day: date, letter: dict[str, Any]) -> bool:
        async with self._lock:  # one writer at a time: the duplicate check and the append go together
            return await asyncio.to_thread(self._append, self.path(region, day), letter)

    async def read(self, region: str, day: date) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._read, self.path(region, day))

    async def batches(self) -> list[tuple[str, date]]:
        def scan() -> list[tuple[str, date]]:
            found = []
            for path in sorted(self.letters_dir.glob("*/*.jsonl")):
                try:
                    found.append((path.parent.name, date.fromisoformat(path.stem)))
                except ValueError:
                    continue  # not a spool file of ours
            return found

        return await asyncio.to_thread(scan)


_LABELS = {
    "zh-CN": {"dear": "尊敬的{name}：", "dear_anon": "尊敬的客户：", "to": "收件人", "from": "寄件人"},
    "en": {"dear": "Dear {name},", "dear_anon": "Dear customer,", "to": "To", "from": "From"},
}


def letter_date(day: date, language: str) -> str:
    if language == "en":
        return f"{day.day} {day.strftime('%B')} {day.year}"
    return f"{day.year}年{day.month}月{day.day}日"


def write_batch_pdf(letters: list[dict[str, Any]], path: Path, sender: str, day: date, font_path: Path) -> None:
    """One PDF, a page per letter. Module level, so it can run in a worker process."""
    pdf = FPDF(format="A4")
    pdf.set_title(f"{sender} {day.isoformat()}")
    pdf.set_creator("crm-platform notifications")
    pdf.add_font("wqy", fname=str(font_path))
    pdf.set_auto_page_break(auto=True, margin=20)
    for letter in letters:
        _page(pdf, letter, sender, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".pdf.part")
    pdf.output(str(partial))
    os.replace(partial, path)  # a half-written batch never reaches the print room


def _page(pdf: FPDF, letter: dict[str, Any], sender: str, day: date) -> None:
    labels = _LABELS.get(letter.get("language") or "zh-CN", _LABELS["zh-CN"])
    language = "en" if labels is _LABELS["en"] else "zh-CN"
    width = pdf.w - pdf.l_margin - pdf.r_margin
    pdf.add_page()
    pdf.set_font("wqy", size=10)
    pdf.cell(width / 2, 6, f"{labels['from']}: {sender}")
    pdf.cell(width / 2, 6, letter_date(day, language), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(10)
    # The address block, where a window envelope shows it.
    pdf.set_font("wqy", size=12)
    if letter.get("recipient_name"):
        pdf.multi_cell(width * 0.6, 7, f"{labels['to']}: {letter['recipient_name']}",
                       new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(width * 0.6, 7, letter["postal_address"], new_x="LMARGIN", new_y="NEXT")
    pdf.ln(14)
    if letter.get("subject"):
        pdf.set_font("wqy", size=15)
        pdf.multi_cell(width, 9, letter["subject"], new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    pdf.set_font("wqy", size=12)
    name = letter.get("recipient_name")
    pdf.multi_cell(width, 7, labels["dear"].format(name=name) if name else labels["dear_anon"],
                   new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.multi_cell(width, 7, letter["body"], new_x="LMARGIN", new_y="NEXT")
    pdf.ln(12)
    pdf.cell(width, 7, sender, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(width, 7, letter_date(day, language), align="R", new_x="LMARGIN", new_y="NEXT")


# Line-breaking Chinese text is pure-Python work (~15 ms of CPU a letter): a big batch is
# rendered in a worker process, so the service's event loop never waits on it.
_pool: ProcessPoolExecutor | None = None


def _renderer() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        # spawn, not fork: the service has threads (Kafka, SMTP) a forked child must not inherit.
        _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    return _pool


class LetterBatcher:
    """The letter channel; ``letters_dir`` may be the service's settings (letters_dir), as the
    channel factory passes them."""

    def __init__(self, letters_dir: Path | str | Any, *, spool: LetterSpool | None = None,
                 sender_names: Mapping[str, str] | None = None, default_sender: str = "客户中心",
                 font_path: Path | None = None, clock: Callable[[], datetime] | None = None):
        if not isinstance(letters_dir, (str, Path)):
            letters_dir = letters_dir.letters_dir
        self.letters_dir = Path(letters_dir)
        self.spool = spool or JsonlLetterSpool(self.letters_dir)
        self.sender_names = dict(sender_names or {})
        self.default_sender = default_sender
        self.font_path = font_path or default_font_path()
        self.clock = clock or (lambda: datetime.now(BEIJING))

    async def add(self, message: OutboundMessage) -> SendResult:
        """Put a letter in its region's batch for today; accepted means it will be printed."""
        if not message.postal_address or not message.postal_address.strip():
            return SendResult(accepted=False, permanent=True, error="postal_address: missing")
        if not _REGION.match(message.region):
            return SendResult(accepted=False, permanent=True, error="region: not a region id")
        day = self.clock().astimezone(BEIJING).date()
        letter = {
            "message_id": message.message_id, "language": message.language,
            "recipient_name": message.recipient_name, "postal_address": message.postal_address.strip(),
            "subject": message.subject, "body": message.body, "added_at": self.clock().isoformat(),
        }
        added = await self.spool.append(message.region, day, letter)
        log.info("letter %s the batch", "added to" if added else "already in", extra={
            "message_id": message.message_id, "region": message.region, "day": day.isoformat(),
            "address": mask_address(message.postal_address)})
        return SendResult(accepted=True, provider_ref=f"{message.region}/{day.isoformat()}")

    async def send(self, message: OutboundMessage) -> SendResult:
        """The :class:`Gateway` port: sending a letter is adding it to the batch."""
        return await self.add(message)

    async def render(self, region: str, day: date) -> Path:
        """Write the region's batch of that day as one PDF; LookupError when it has no letter."""
        if not _REGION.match(region):
            raise ValueError("region: not a region id")
        letters = await self.spool.read(region, day)
        if not letters:
            raise LookupError(f"no letters for {region} on {day.isoformat()}")
        path = self.pdf_path(region, day)
        sender = self.sender_names.get(region, self.default_sender)
        global _pool
        try:
            await asyncio.get_running_loop().run_in_executor(
                _renderer(), write_batch_pdf, letters, path, sender, day, self.font_path)
        except BrokenProcessPool:
            _pool = None  # the worker died (killed, out of memory): the next render starts a new one
            raise
        log.info("letter batch rendered", extra={"region": region, "day": day.isoformat(), "letters": len(letters)})
        return path

    def pdf_path(self, region: str, day: date) -> Path:
        return self.letters_dir / region / f"{day.isoformat()}.pdf"

    async def render_closed(self) -> list[Path]:
        """Render every batch of a day that is over (Beijing time) and has no PDF yet: what the
        daily job (or ``python -m notifications.adapters.letters``) calls. Safe to run twice."""
        today = self.clock().astimezone(BEIJING).date()
        rendered = []
        for region, day in await self.spool.batches():
            if day < today and not self.pdf_path(region, day).exists():
                rendered.append(await self.render(region, day))
        return rendered

    async def close(self) -> None:
        """Nothing is held open: each add and render opens its files itself."""


def main(argv: list[str] | None = None) -> None:
    """``python -m notifications.adapters.letters [--dir .data/letters] [REGION DAY]``: render
    one batch, or every closed day's batch not rendered yet."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m notifications.adapters.letters", description=main.__doc__)
    parser.add_argument("--dir", default=os.environ.get("CRM_NOTIFICATIONS_LETTERS_DIR", ".data/letters"))
    parser.add_argument("region", nargs="?")
    parser.add_argument("day", nargs="?", type=date.fromisoformat)
    args = parser.parse_args(argv)
    batcher = LetterBatcher(args.dir)
    if args.region and args.day:
        paths = [asyncio.run(batcher.render(args.region, args.day))]
    elif args.region or args.day:
        parser.error("give both REGION and DAY, or neither")
    else:
        paths = asyncio.run(batcher.render_closed())
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
