"""The self-service page `/s/{token}`: the customer answers on a phone, in zh-CN or en.

Server-rendered HTML with its style inline and nothing loaded from elsewhere (the CSP
says so). "Save" keeps a partial answer to resume later with the same link; "Submit"
completes the survey, after which the link is refused as used. A forged, expired or
used link gets a page saying so, never a form.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from surveys.deps import SurveysDeps
from surveys.domain import definitions, tokens
from surveys.domain.answers import InvalidAnswer
from surveys.domain.definitions import Question, QuestionType
from surveys.handlers import answering
from surveys.handlers.lifecycle import WrongState

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
}
TEXT = {
    "zh-CN": {"save": "保存，稍后继续", "submit": "提交", "saved": "已保存。您可以稍后用同一链接继续填写。",
              "thanks": "感谢您的反馈！", "thanks_detail": "您的回答已提交。", "required": "必答",
              "error": "请检查：", "forged": "链接无效",
              "forged_detail": "此链接无法识别，请使用短信中收到的完整链接。",
              "used": "链接已使用", "used_detail": "此问卷已提交，或已发送新的链接。感谢您的参与。",
              "expired": "链接已过期", "expired_detail": "此问卷的填写时间已过。",
              "closed": "问卷已关闭", "closed_detail": "此问卷已不再需要填写。", "other_lang": "English",
              "low": "非常不满意", "high": "非常满意"},
    "en": {"save": "Save and continue later", "submit": "Submit",
           "saved": "Saved. You can come back with the same link to finish.",
           "thanks": "Thank you for your feedback!", "thanks_detail": "Your answers were submitted.",
           "required": "required", "error": "Please check:", "forged": "Invalid link",
           "forged_detail": "This link is not recognised. Please use the whole link from your message.",
           "used": "Link already used",
           "used_detail": "This survey was submitted, or a newer link was sent. Thank you.",
           "expired": "Link expired", "expired_detail": "The time to answer this survey has passed.",
           "closed": "Survey closed", "closed_detail": "This survey no longer needs an answer.",
           "other_lang": "中文", "low": "very dissatisfied", "high": "very satisfied"},
}
# Why an answer was refused, as the customer reads it (InvalidAnswer.code).
ANSWER_ERRORS = {
    "zh-CN": {"range": "请选择范围内的分值", "number": "请选择一个分值", "choice": "请选择一个选项",
              "required": "此题必答", "length": "内容过长（最多 2000 字）"},
    "en": {"range": "please choose a score in the range", "number": "please choose a score",
           "choice": "please choose one option", "required": "this question needs an answer",
           "length": "too long (2,000 characters at most)"},
}
STYLE = """body{font-family:system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;
background:#f5f6f8;color:#222}main{max-width:34rem;margin:0 auto;padding:1rem}h1{font-size:1.3rem}
fieldset{border:0;background:#fff;border-radius:.6rem;margin:0 0 .8rem;padding:.8rem}legend{font-weight:600;
padding:0;margin-bottom:.4rem}.opts{display:flex;flex-wrap:wrap;gap:.4rem}.opts label{border:1px solid #ccd;
border-radius:.4rem;padding:.5rem .7rem;min-width:2.2rem;text-align:center}textarea{width:100%;min-height:5rem;
box-sizing:border-box}button{font-size:1rem;padding:.7rem 1rem;border-radius:.5rem;border:0;margin:.2rem 0;
width:100%}.primary{background:#1a6dd6;color:#fff}.note{background:#eef6ee;padding:.6rem;border-radius:.4rem}
.err{background:#fdecea;padding:.6rem;border-radius:.4rem}.hint{color:#667;font-size:.85rem}a{color:#1a6dd6}"""


def language(request: Request) -> str:
    wanted = request.query_params.get("lang") or request.headers.get("accept-language", "")
    return "en" if wanted.lower().startswith("en") else "zh-CN"


def _page(lang: str, title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>")
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def refused(lang: str, reason: str) -> HTMLResponse:
    t = TEXT[lang]
    status = 403 if reason == "forged" else 410
    return _page(lang, t[reason], f"<h1>{escape(t[reason])}</h1><p>{escape(t[reason + '_detail'])}</p>", status)


def _question(q: Question, lang: str, value: Any) -> str:
    t = TEXT[lang]
    mark = "" if not q.required else f' <span class="hint">({t["required"]})</span>'
    name = f"q_{q.id}"
    if q.type is QuestionType.TEXT:
        field = f'<textarea name="{name}" maxlength="2000">{escape(str(value or ""))}</textarea>'
    else:
        if q.type is QuestionType.CHOICE:
            options = [(o.id, o.en if lang == "en" else o.zh) for o in q.options]
        else:
            low, high = (1, 5) if q.type is QuestionType.SCALE else (0, 10)
            options = [(str(n), str(n)) for n in range(low, high + 1)]
        field = '<div class="opts">' + "".join(
            f'<label><input type="radio" name="{name}" value="{escape(v)}"'
            f'{" checked" if str(value) == v else ""}> {escape(label)}</label>' for v, label in options) + "</div>"
        if q.type is QuestionType.SCALE:
            field += f'<div class="hint">1 = {t["low"]}, 5 = {t["high"]}</div>'
    return f"<fieldset><legend>{escape(q.text(lang))}{mark}</legend>{field}</fieldset>"


def form(doc: dict[str, Any], token: str, lang: str, *, values: dict[str, Any], note: str = "",
         error: str = "", status: int = 200) -> HTMLResponse:
    t = TEXT[lang]
    d = definitions.get(doc["kind"], int(doc["definition_version"]))
    other = "en" if lang == "zh-CN" else "zh-CN"
    body = [f'<p class="hint"><a href="?lang={other}">{t["other_lang"]}</a></p>', f"<h1>{escape(d.title(lang))}</h1>"]
    if note:
        body.append(f'<p class="note">{escape(note)}</p>')
    if error:
        body.append(f'<p class="err" role="alert">{escape(t["error"])} {escape(error)}</p>')
    body.append(f'<form method="post" action="/s/{escape(token)}?lang={lang}">')
    body += [_question(q, lang, values.get(q.id)) for q in d.questions]
    body.append(f'<button class="primary" name="action" value="submit">{t["submit"]}</button>'
                f'<button name="action" value="save">{t["save"]}</button></form>')
    return _page(lang, d.title(lang), "".join(body), status)


def build_router(deps: SurveysDeps) -> APIRouter:
    router = APIRouter(tags=["self-service"], include_in_schema=True)

    async def open_survey(token: str) -> dict[str, Any]:
        claims = tokens.verify(deps.link_secret, token, deps.now())
        return answering.survey_for_token(await deps.surveys.get(claims.survey_id), claims)

    @router.get("/s/{token}", response_class=HTMLResponse, summary="The customer's survey page")
    async def show(token: str, request: Request) -> HTMLResponse:
        lang = language(request)
        try:
            doc = await open_survey(token)
        except tokens.TokenRefused as exc:
            return refused(lang, exc.reason)
        return form(doc, token, lang, values=doc.get("draft") or {})

    @router.post("/s/{token}", response_class=HTMLResponse, summary="Save or submit the customer's answers")
    async def submit(token: str, request: Request) -> HTMLResponse:
        lang = language(request)
        try:
            doc = await open_survey(token)
        except tokens.TokenRefused as exc:
            return refused(lang, exc.reason)
        fields = parse_qs((await request.body()).decode(errors="replace"), keep_blank_values=True)
        action = (fields.get("action") or ["submit"])[-1]
        given = {k[2:]: v[-1] for k, v in fields.items() if k.startswith("q_")}
        values = {**(doc.get("draft") or {}), **given}
        d = definitions.get(doc["kind"], int(doc["definition_version"]))
        try:
            if action == "save":
                await answering.save_draft(deps, doc["_id"], given)
                return form(doc, token, lang, values=values, note=TEXT[lang]["saved"])
            await answering.record_answer(deps, doc["_id"], answering.Answer("online", values, "customer"))
        except InvalidAnswer as exc:
            q = d.question(exc.question)
            label = q.text(lang) if q else exc.question
            reason = ANSWER_ERRORS[lang].get(exc.code, exc.message)
            return form(doc, token, lang, values=values, error=f"{label} — {reason}", status=422)
        except WrongState as exc:
            return refused(lang, "used" if exc.status == "completed" else "closed")
        t = TEXT[lang]
        return _page(lang, t["thanks"], f"<h1>{t['thanks']}</h1><p>{t['thanks_detail']}</p>")

    return router
