"""A member of staff's day in a real browser (Debian's chromium, headless) against the real
platform: sign in, take in a walk-in at the front desk, find the case in the queue as it
appears (live refresh, no reload), take it from validation to its lesson learned, see the
service's refusals told in their language, and switch to English."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

# Every label the page's form controls need (visible inputs, selects, textareas).
UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name || e.id)"""

# WCAG contrast of the text of the given elements against their first opaque background.
CONTRAST = """(selector) => {
  const rgb = s => s.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => { const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
                               return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bg = el => { for (; el; el = el.parentElement) { const c = getComputedStyle(el).backgroundColor;
                      const v = rgb(c); if (v.length < 4 || v[3] > 0) return v.slice(0, 3); } return [255, 255, 255]; };
  return [...document.querySelectorAll(selector)].filter(e => e.offsetParent !== null).map(e => {
    const a = lum(rgb(getComputedStyle(e).color)), b = lum(bg(e));
    return [e.tagName + '.' + e.className, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]; });
}"""


async def shot(page: Any, folder: Path | None, name: str) -> None:
    if folder is not None:
        await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


async def check_accessible(page: Any) -> None:
    assert await page.evaluate(UNLABELLED) == [], "every form control has a label"
    for what, ratio in await page.evaluate(CONTRAST, "h1, h2, p, td, th, label, button, a, summary, dd, dt, li"):
        assert ratio >= 4.5, f"{what}: contrast {ratio:.2f} is below 4.5:1"


async def act(page: Any, route: str, **fields: str) -> None:
    """Open an action's form, fill it, submit it, and wait for the case page to say it is done."""
    box = page.locator(f"#action-{route}")
    await box.locator("summary").click()
    await fill(box, route, fields)
    await box.locator("button[type=submit]").click()
    done = re.compile(rf"done={re.escape(route)}")
    for _ in range(60):  # until the page moves on, or the form shows the service's refusal
        if done.search(page.url):
            break
        problem = box.get_by_test_id("problem")
        assert not await problem.count(), f"{route} refused: {await problem.inner_text()}"
        await page.wait_for_timeout(500)
    await page.wait_for_url(done)
    await page.get_by_test_id("done").wait_for()


async def fill(box: Any, route: str, fields: dict[str, str]) -> None:
    for name, value in fields.items():
        control = box.locator(f"#{route}-{name}")
        if await control.count() == 0:  # a yes/no choice
            await box.locator(f"input[name={name}][value={value}]").check()
        elif await control.evaluate("e => e.tagName") == "SELECT":
            await control.select_option(value)
        else:
            await control.fill(value)


async def test_a_walk_in_complaint_from_the_front_desk_to_its_lesson_learned(platform, browser, screenshots):
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1360, "height": 900})
    page = await context.new_page()
    project = f"碧水湾{uuid.uuid4().hex[:6]}"

    # Signed out: any page leads to the sign-in, and back to the page asked for.
    await page.goto(f"{platform.console}/desk")
    assert "/signin" in page.url
    await check_accessible(page)
    await shot(page, screenshots, "01-signin")
    await page.get_by_label("用户名").fill("agent-li")
    await page.get_by_label("角色").select_option("agent")
    await page.get_by_role("button", name="登录", exact=True).click()
    await page.wait_for_url(re.compile(r"/desk$"))

    # The front desk: a walk-in owner with a leak.
    await page.get_by_label("渠道").select_option("front_desk")
    await page.get_by_label("电话").fill("13812345678")
    await page.get_by_label("姓名").fill("张伟")
    await page.get_by_label("项目").fill(project)
    await page.get_by_label("楼栋").fill("3")
    await page.get_by_label("房号").fill("1201")
    await page.locator("#d-subject").fill("卫生间漏水没人管")
    await page.locator("#d-body").fill("我家卫生间漏水一个月了，报修三次没人来，非常不满意，要求尽快处理。")
    await check_accessible(page)
    await shot(page, screenshots, "02-front-desk")
    await page.get_by_role("button", name="登记").click()
    await page.get_by_test_id("recorded").wait_for()

    # The queue shows the new case by itself (live refresh), with its SLA clock.
    await page.get_by_role("link", name="工单队列").first.click()
    row = page.locator("#queue-rows tr", has_text=project)
    await row.wait_for(timeout=90_000)
    assert re.search(r"剩余|已超时", await row.inner_text()), "the row shows its SLA clock"
    await check_accessible(page)
    await shot(page, screenshots, "03-queue")
    # An agent sees no supervisor-only button on the case...
    await row.get_by_role("link").first.click()
    await page.get_by_test_id("case-number").wait_for()
    case_url = page.url
    assert await page.locator("#action-force-close").count() == 0
    assert await page.locator("#action-reassign").count() == 0
    await check_accessible(page)
    await shot(page, screenshots, "04-case")

    # ...and the service refuses the step if it is forced.
    forced = await page.request.post(case_url + "/act/force-close", form={"reason": "强行结案"})
    assert forced.status == 403 and "您的角色或片区不能执行此操作" in await forced.text()

    # A required field left empty: the service's 422, told in Chinese, next to the form.
    box = page.locator("#action-validate")
    await box.locator("summary").click()
    await box.locator("#validate-outcome").select_option("valid")
    await box.locator("button[type=submit]").click()
    problem = page.locator("#action-validate").get_by_test_id("problem")
    await problem.wait_for()
    assert "请填写「说明（告知客户）」" in await problem.inner_text()
    assert await page.locator("#validate-explanation").get_attribute("aria-invalid") == "true"
    await shot(page, screenshots, "05-refused-field")

    await fill(page.locator("#action-validate"), "validate", {"explanation": "属于工程质量投诉，予以受理。"})
    await page.locator("#action-validate button[type=submit]").click()
    await page.wait_for_url(re.compile(r"done=validate"))
    await act(page, "classify", severity="general", category="engineering_quality", reason="现场核实为一般渗漏")
    await act(page, "assess", nature="卫生间防水层破损", influence="单户，影响正常使用")
    # The routing already chose the department: the form starts from it.
    assert await page.locator("#assign-department").input_value() == "engineering"
    await act(page, "assign", department="engineering", assignee="王工")
    await act(page, "start-investigation")
    await act(page, "findings", responsible_department="engineering", root_cause="防水层施工不规范",
              written_findings="现场闭水试验确认渗漏点位于淋浴区。")
    await act(page, "start-handling", plan="重做防水层并修复吊顶")
    await act(page, "progress", message_to_customer="维修师傅将于明天上午上门。")
    await act(page, "resolve", summary="已重做防水并修复吊顶，闭水试验通过。")

    # Closing before the customer has accepted: refused, with what is missing.
    box = page.locator("#action-close")
    await box.locator("summary").click()
    await box.locator("button[type=submit]").click()
    problem = page.locator("#action-close").get_by_test_id("problem")
    await problem.wait_for()
    told = await problem.inner_text()
    assert "当前状态下不能执行此操作" in told and "尚未完成：客户已认可" in told
    await shot(page, screenshots, "06-refused-close")

    await act(page, "customer-confirmation", accepted="true", comment="满意")
    await act(page, "department-approval", note="同意结案")
    await act(page, "close")
    await act(page, "lesson", root_cause="防水施工工艺", responsible_department="工程部",
              improvement="淋浴区防水增加闭水试验验收")
    assert await page.get_by_test_id("status").inner_text() == "已总结"
    timeline = await page.get_by_test_id("timeline").inner_text()
    for step in ("确认有效性", "调查结论", "解决", "结案", "经验总结"):
        assert step in timeline
    assert "agent-li" in timeline, "the timeline says who took each step"
    # Keyboard: the skip link is the first stop and leads to the content.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip"
    await shot(page, screenshots, "07-case-closed")

    # English, remembered for this user on the next page.
    await page.get_by_label("语言").select_option("en")
    await page.get_by_role("button", name="切换").click()
    await page.wait_for_load_state()
    assert await page.get_by_test_id("status").inner_text() == "Lesson recorded"
    await page.goto(f"{platform.console}/queue")
    assert await page.get_by_role("heading", level=1).inner_text() == "Case queue"
    assert await page.locator("html").get_attribute("lang") == "en"
    await shot(page, screenshots, "08-queue-en")

    # Screens over services not running here: a clearly marked empty panel, not an error.
    await page.goto(f"{platform.console}/kpis")
    await page.get_by_test_id("panel-missing").wait_for()
    await shot(page, screenshots, "09-kpis-not-there-yet")
    await page.goto(f"{platform.console}/consultations")
    await check_accessible(page)
    await shot(page, screenshots, "10-contacts-without-a-case")
    await context.close()


async def test_a_session_that_expired_or_was_forged_signs_in_again(platform, browser):
    context = await browser.new_context(locale="en-US")
    host = platform.console.split("//")[1].split(":")[0]
    await context.add_cookies([{"name": "crm_console_session", "value": "not-a-token", "domain": host, "path": "/"}])
    page = await context.new_page()
    await page.goto(f"{platform.console}/queue")
    assert "/signin" in page.url
    assert await page.get_by_role("heading", level=1).inner_text() == "Sign in"
    await context.close()


async def test_the_caller_is_recognised_and_a_collective_incident_shows_its_cases(platform, browser, screenshots):
    import httpx
    from crm_runtime.auth import issue_token

    from .conftest import JWT_SECRET

    project = f"翠湖苑{uuid.uuid4().hex[:6]}"
    phones = [f"1391{uuid.uuid4().int % 10**7:07d}" for _ in range(5)]
    headers = {"Authorization": "Bearer " + issue_token(JWT_SECRET, sub="desk", roles=["agent"],
                                                        regions=["shenzhen"])}
    # Five owners of one building about its lift, through four channels: one incident.
    async with httpx.AsyncClient(base_url=platform.intake, headers=headers, timeout=30) as intake:
        for phone, channel in zip(phones, ["hotline", "front_desk", "forum", "hotline", "letter"], strict=True):
            r = await intake.post("/v1/contacts", json={
                "channel": channel, "region": "shenzhen", "subject": "电梯经常故障",
                "body": "2栋电梯又坏了，物业维修不及时，老人上下楼很困难。",
                "customer": {"name": "陈明" if phone == phones[0] else "业主", "phone": phone},
                "project": project, "building": "2", "unit": "1502"})
            assert r.status_code in (200, 201, 202), r.text

    context = await browser.new_context(locale="zh-CN", viewport={"width": 1360, "height": 900})
    page = await context.new_page()
    await page.goto(f"{platform.console}/desk")
    await page.get_by_label("用户名").fill("agent-wang")
    await page.get_by_label("角色").select_option("agent")
    await page.get_by_role("button", name="登录", exact=True).click()
    await page.wait_for_url(re.compile(r"/desk$"))

    # Typing a number intake knows (from the first contact: a provisional customer): the caller,
    # their name masked, before anything is sent.
    await page.get_by_label("电话").fill(phones[0])
    found = page.get_by_test_id("caller-found")
    await found.wait_for(timeout=30_000)
    text = await found.inner_text()
    assert "陈*" in text and "陈明" not in text
    await check_accessible(page)
    await shot(page, screenshots, "11-caller-recognised")
    await page.get_by_label("电话").fill("13700000001")
    await page.get_by_test_id("caller-unknown").wait_for()

    # The incident appears in the list once cases has grouped the five, and shows every case.
    listed = page.locator("tr[data-incident]", has_text=project)
    for _ in range(90):
        await page.goto(f"{platform.console}/incidents")
        if await listed.count() and "5" in await listed.locator("td").nth(5).inner_text():
            break
        await page.wait_for_timeout(1000)
    await check_accessible(page)
    await listed.get_by_role("link").click()
    await page.get_by_test_id("incident-count").wait_for()
    assert "共 5 个工单，其中 5 个未结案" in await page.get_by_test_id("incident-count").inner_text()
    assert await page.locator("tr[data-case]").count() == 5
    await check_accessible(page)
    await shot(page, screenshots, "12-incident")
    await context.close()
