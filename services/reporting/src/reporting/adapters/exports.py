"""The monthly complaint report as CSV and as an XLSX workbook (a sheet per section,
bilingual headers, number formats, frozen header row)."""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

SECTIONS: dict[str, tuple[str, str]] = {
    "summary": ("指标汇总", "Summary"),
    "channels": ("渠道", "Channels"),
    "departments": ("部门回复及时率", "Departments"),
    "categories": ("投诉类别", "Categories"),
    "severities": ("严重程度", "Severities"),
    "statuses": ("状态", "Statuses"),
    "sla_breaches": ("超时", "SLA breaches"),
    "satisfaction": ("满意度", "Satisfaction"),
    "root_causes": ("根因帕累托", "Root causes"),
}

HEADERS: dict[str, str] = {
    "kpi": "指标代码", "name_zh": "指标", "name_en": "名称(英文)", "value": "数值", "target": "目标",
    "comparison": "比较", "met": "达标", "count": "计数", "base": "基数", "channel": "渠道",
    "contacts": "来访量", "share": "占比", "reference": "参考占比", "department": "部门", "opened": "立案",
    "closed": "关闭", "replied_cases": "应回复案件", "timely": "及时回复", "timeliness": "及时率",
    "sla_breaches": "超时次数", "avg_close_hours": "平均关闭时长(小时)", "category": "类别", "cases": "案件数",
    "severity": "严重程度", "status": "状态", "clock": "时钟", "breaches": "超时次数",
    "survey_kind": "回访类型", "completed": "完成数", "satisfied_share": "满意率(4+5)",
    "dissatisfied_share": "不满意率(1+2)", "root_cause": "根因", "cumulative_share": "累计占比",
}
PERCENT = {"share", "reference", "timeliness", "satisfied_share", "dissatisfied_share", "cumulative_share"}


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(rows[0].keys()) if rows else []


def header(column: str) -> str:
    return f"{HEADERS.get(column, column)} / {column}"


def _plain(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else value


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["region", report["region"], "month", report["month"]])
    for section, (zh, en) in SECTIONS.items():
        rows = report[section]
        writer.writerow([])
        writer.writerow([f"{zh} / {en}"])
        columns = _columns(rows)
        writer.writerow([header(c) for c in columns])
        for row in rows:
            writer.writerow([_plain(row[c]) for c in columns])
    return "\ufeff" + out.getvalue()  # a BOM, so spreadsheet programs read the Chinese as UTF-8


def to_xlsx(report: dict[str, Any]) -> bytes:
    book = Workbook()
    book.remove(book.active)
    bold = Font(bold=True)
    for section, (zh, en) in SECTIONS.items():
        sheet = book.create_sheet(f"{zh} {en}"[:31])
        rows = report[section]
        columns = _columns(rows)
        sheet.append([header(c) for c in columns])
        for cell in sheet[1]:
            cell.font = bold
        for row in rows:
            sheet.append([_xlsx_value(row[c]) for c in columns])
        for index, column in enumerate(columns, start=1):
            letter = sheet.cell(row=1, column=index).column_letter
            sheet.column_dimensions[letter].width = max(12, min(40, len(header(column)) + 2))
            fmt = "0.0%" if column in PERCENT else "0.00" if column in ("avg_close_hours",) else None
            if section == "summary" and column in ("value", "target"):
                fmt = "0.000"
            if fmt:
                for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                    cell.number_format = fmt
        sheet.freeze_panes = "A2"
    meta = book.create_sheet("说明 About", 0)
    meta.append(["区域 / region", report["region"]])
    meta.append(["月份 / month", report["month"]])
    meta.append(["数据版本 / generation", report.get("generation", "")])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _xlsx_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "达标 met" if value else "未达标 not met"
    return value
