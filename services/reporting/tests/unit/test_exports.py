"""The monthly report's workbook, read back with a spreadsheet library (openpyxl): a sheet
per section with bilingual headers, number formats and a frozen header; text stays text."""

from __future__ import annotations

import io

from openpyxl import load_workbook
from reporting.adapters.exports import SECTIONS, to_csv, to_xlsx


def report(**sections) -> dict:
    return {"region": "shenzhen", "month": "2026-03", "generation": "g2",
            **{s: [] for s in SECTIONS}, **sections}


def test_each_section_is_a_sheet_with_bilingual_headers_formats_and_a_frozen_header():
    book = load_workbook(io.BytesIO(to_xlsx(report(
        summary=[{"kpi": "reply_timeliness", "value": 0.875, "target": 0.95, "met": False}],
        departments=[{"department": "engineering", "timeliness": 0.5, "avg_close_hours": 12.25},
                     {"department": "property", "timeliness": None, "avg_close_hours": None}]))))
    assert book.sheetnames == ["说明 About", *(f"{zh} {en}"[:31] for zh, en in SECTIONS.values())]
    about = book["说明 About"]
    assert [[c.value for c in row] for row in about.iter_rows()] == [
        ["区域 / region", "shenzhen"], ["月份 / month", "2026-03"], ["数据版本 / generation", "g2"]]
    summary = book["指标汇总 Summary"]
    assert [c.value for c in summary[1]] == ["指标代码 / kpi", "数值 / value", "目标 / target", "达标 / met"]
    assert all(c.font.bold for c in summary[1])
    assert [c.value for c in summary[2]] == ["reply_timeliness", 0.875, 0.95, "未达标 not met"]
    assert summary["B2"].number_format == "0.000" and summary.freeze_panes == "A2"
    departments = book["部门回复及时率 Departments"]
    assert [c.value for c in departments[2]] == ["engineering", 0.5, 12.25]
    assert departments["B2"].number_format == "0.0%" and departments["C2"].number_format == "0.00"
    assert [c.value for c in departments[3]] == ["property", None, None]  # no value: an empty cell
    assert book["渠道 Channels"].max_row == 1 and book["渠道 Channels"]["A1"].value is None  # an empty section


def test_text_that_looks_like_a_formula_or_a_link_stays_text():
    hostile = ['=HYPERLINK("http://evil.example/","点我")', "http://evil.example/", "+1+1", "0123"]
    book = load_workbook(io.BytesIO(to_xlsx(report(root_causes=[
        {"root_cause": text, "count": 1} for text in hostile]))))
    cells = [row[0] for row in book["根因帕累托 Root causes"].iter_rows(min_row=2)]
    assert [c.value for c in cells] == hostile
    assert {c.data_type for c in cells} == {"s"}
    assert not any(c.hyperlink for c in cells)


def test_the_csv_quotes_free_text_a_spreadsheet_would_run_as_a_formula():
    rows = [{"root_cause": text, "count": -2} for text in ['=HYPERLINK("http://evil.example/")', "@SUM(A1)", "防水层未搭接"]]
    lines = to_csv(report(root_causes=rows)).splitlines()
    assert lines[-3:] == ['"\'=HYPERLINK(""http://evil.example/"")",-2', "'@SUM(A1),-2", "防水层未搭接,-2"]
