"""SmtpGateway into the local SMTP sink (in process and as the `make run` process), and a
letter batch rendered to PDF and read back with its Chinese text and embedded font."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import pytest
from crm_devstack import cli
from crm_devstack.servers import free_port, wait_for_port
from crm_devstack.sinks import smtp as smtp_sink
from notifications.adapters import letters as letters_module
from notifications.adapters.email import SmtpGateway
from notifications.adapters.gateways import OutboundMessage, TimeoutUnknown
from notifications.adapters.letters import BEIJING, LetterBatcher
from pypdf import PdfReader

SUBJECT = "您的投诉 SZ-2026-000123 已受理 / Your complaint has been received"


def mail(message_id: str, to: str) -> OutboundMessage:
    return OutboundMessage(message_id=message_id, channel="email", region="shenzhen", language="zh-CN", to=to,
                           template_code="case.acknowledged", params={}, subject=SUBJECT,
                           body="尊敬的张先生：\n我们已收到您关于3栋渗水的投诉，将在24小时内联系您。",
                           recipient_name="张伟")


@pytest.fixture(scope="module")
def smtp_server(tmp_path_factory):
    mail_dir = tmp_path_factory.mktemp("mail")
    port = free_port()
    controller = smtp_sink.start("127.0.0.1", port, mail_dir)
    yield port, mail_dir
    controller.stop()


async def test_an_email_lands_in_the_sink_with_its_chinese_subject_intact(smtp_server):
    port, mail_dir = smtp_server
    gateway = SmtpGateway("127.0.0.1", port, "noreply@crm.example.cn", sender_name="深圳客户中心")
    result = await gateway.send(mail("ntf-mail-1", "zhang.wei@example.com"))
    assert result.accepted and result.provider_ref == "<ntf-mail-1@notifications.crm.local>"
    (stored,) = await asyncio.to_thread(smtp_sink.read_mail, mail_dir, "zhang.wei@example.com")
    assert stored["Subject"] == SUBJECT
    assert stored["X-Notification-Id"] == "ntf-mail-1"
    assert stored["To"].addresses[0].display_name == "张伟"
    assert "3栋渗水" in stored.get_body().get_content()
    assert await asyncio.to_thread(smtp_sink.read_mail, mail_dir, "someone.else@example.com") == []


async def test_a_mail_server_that_is_down_is_a_transient_failure():
    result = await SmtpGateway("127.0.0.1", free_port(), "noreply@crm.example.cn", timeout_s=2).send(
        mail("ntf-mail-down", "zhang.wei@example.com"))
    assert not result.accepted and not result.permanent


async def test_a_mail_server_that_goes_quiet_gives_timeout_unknown():
    async def quiet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 quiet ESMTP\r\n")  # greets, then never answers again
        await writer.drain()
        await asyncio.sleep(30)

    server = await asyncio.start_server(quiet, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TimeoutUnknown):
            await SmtpGateway("127.0.0.1", port, "noreply@crm.example.cn", timeout_s=0.5).send(
                mail("ntf-mail-quiet", "zhang.wei@example.com"))
    finally:
        server.close()


async def test_the_smtp_sink_process_of_make_run_stores_mail(tmp_path):
    port = free_port()
    env = {**os.environ, "CRM_SMTP_SINK_PORT": str(port), "CRM_SMTP_SINK_DIR": str(tmp_path)}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("crm-stack")), "smtp-sink"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, timeout=60, proc=proc)
        result = await SmtpGateway("127.0.0.1", port, "noreply@crm.example.cn").send(
            mail("ntf-mail-proc", "li.na@example.com"))
        assert result.accepted
        (stored,) = smtp_sink.read_mail(tmp_path, "li.na@example.com")
        assert stored["Subject"] == SUBJECT
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_make_run_starts_both_sinks(capsys, monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("MONGODB_URL", raising=False)
    cli.main(["processes"])
    names = capsys.readouterr().out.split()
    assert {"sms-sink", "smtp-sink"} <= set(names)
    procfile = (Path(__file__).parents[4] / "Procfile").read_text()
    assert {line.split(":", 1)[0] for line in procfile.splitlines() if ":" in line} >= set(names)


def letter(message_id: str, region: str, name: str, address: str, body: str, language: str = "zh-CN"):
    return OutboundMessage(message_id=message_id, channel="letter", region=region, language=language, to="",
                           template_code="milestone.site_open_day", params={}, subject="工地开放日邀请函",
                           body=body, postal_address=address, recipient_name=name)


def pdf_fonts_embedded(reader: PdfReader) -> bool:
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descendants = font.get("/DescendantFonts")
            descriptor = (descendants[0].get_object() if descendants else font).get("/FontDescriptor")
            if descriptor is None or "/FontFile2" not in descriptor.get_object():
                return False
    return True


async def test_a_daily_letter_batch_is_one_pdf_with_a_page_per_letter_in_chinese(tmp_path):
    day = datetime(2026, 12, 1, 10, 0, tzinfo=BEIJING)
    batcher = LetterBatcher(tmp_path, sender_names={"shenzhen": "翡翠湾客户中心"}, clock=lambda: day)
    await batcher.add(letter("ntf-l-1", "shenzhen", "张伟", "广东省深圳市南山区科技园路1号翡翠湾3栋1201",
                             "诚邀您于12月6日参加翡翠湾项目工地开放日。"))
    await batcher.add(letter("ntf-l-2", "shenzhen", "Li Na", "Room 802, Building 5, Emerald Bay, Shenzhen",
                             "You are invited to the site open day on 6 December.", language="en"))
    await batcher.add(letter("ntf-l-1", "shenzhen", "张伟", "广东省深圳市南山区科技园路1号翡翠湾3栋1201",
                             "诚邀您于12月6日参加翡翠湾项目工地开放日。"))  # the same ledger id again
    await batcher.add(letter("ntf-l-3", "shanghai", "王芳", "上海市浦东新区世纪大道100号", "上海的信。"))

    path = await batcher.render("shenzhen", date(2026, 12, 1))
    assert path == tmp_path / "shenzhen" / "2026-12-01.pdf"
    reader = PdfReader(path)
    assert len(reader.pages) == 2  # one page per letter, the repeated add kept once, shanghai apart
    first, second = (page.extract_text() for page in reader.pages)
    assert "广东省深圳市南山区科技园路1号翡翠湾3栋1201" in first  # the full address on the page
    assert "尊敬的张伟" in first and "工地开放日邀请函" in first and "翡翠湾客户中心" in first
    assert "2026年12月1日" in first
    assert "Dear Li Na" in second and "1 December 2026" in second
    assert pdf_fonts_embedded(reader)

    shanghai = PdfReader(await batcher.render("shanghai", date(2026, 12, 1)))
    assert len(shanghai.pages) == 1 and "上海市浦东新区世纪大道100号" in shanghai.pages[0].extract_text()


async def test_a_day_without_letters_has_no_batch(tmp_path):
    with pytest.raises(LookupError):
        await LetterBatcher(tmp_path).render("shenzhen", date(2026, 12, 2))


async def test_a_batch_of_200_letters_renders(tmp_path):
    batcher = LetterBatcher(tmp_path, clock=lambda: datetime(2026, 12, 1, 9, 0, tzinfo=BEIJING))
    for i in range(200):
        await batcher.add(letter(f"ntf-bulk-{i}", "shenzhen", f"业主{i}", f"广东省深圳市南山区翡翠湾{i}号",
                                 "交付通知：您的房屋将于下月交付。"))
    started = time.monotonic()
    reader = PdfReader(await batcher.render("shenzhen", date(2026, 12, 1)))
    print(f"200 letters rendered in {time.monotonic() - started:.1f}s")
    assert len(reader.pages) == 200
    assert "翡翠湾199号" in reader.pages[199].extract_text()


async def test_the_daily_job_renders_each_closed_day_once_and_leaves_today_open(tmp_path):
    now = [datetime(2026, 11, 30, 15, 0, tzinfo=BEIJING)]
    batcher = LetterBatcher(tmp_path, clock=lambda: now[0])
    await batcher.add(letter("ntf-d-1", "shenzhen", "张伟", "广东省深圳市南山区1号", "昨天的信。"))
    await batcher.add(letter("ntf-d-2", "chengdu", "刘洋", "四川省成都市高新区2号", "昨天的信。"))
    now[0] = datetime(2026, 12, 1, 0, 30, tzinfo=BEIJING)  # past midnight in Beijing: 30 November is closed
    await batcher.add(letter("ntf-d-3", "shenzhen", "张伟", "广东省深圳市南山区1号", "今天的信。"))

    rendered = await batcher.render_closed()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in rendered) == [
        "chengdu/2026-11-30.pdf", "shenzhen/2026-11-30.pdf"]
    assert "成都市高新区2号" in PdfReader(tmp_path / "chengdu" / "2026-11-30.pdf").pages[0].extract_text()
    assert not (tmp_path / "shenzhen" / "2026-12-01.pdf").exists()  # today's batch still takes letters
    assert await batcher.render_closed() == []  # run again: nothing twice


def test_the_print_room_renders_a_batch_from_the_command_line(tmp_path, capsys):
    batcher = LetterBatcher(tmp_path, clock=lambda: datetime(2026, 12, 1, 9, 0, tzinfo=BEIJING))
    asyncio.run(batcher.add(letter("ntf-cli-1", "shenzhen", "张伟", "广东省深圳市南山区1号", "交付通知。")))
    letters_module.main(["--dir", str(tmp_path), "shenzhen", "2026-12-01"])
    assert capsys.readouterr().out.strip() == str(tmp_path / "shenzhen" / "2026-12-01.pdf")
    assert "交付通知" in PdfReader(tmp_path / "shenzhen" / "2026-12-01.pdf").pages[0].extract_text()
