"""Quality report of the kind hint on a labelled sample.

    uv run python -m intake.domain.kind_hint_eval tests/data/contacts_labelled.jsonl

Each line of the file is ``{"channel", "region", "subject", "body", "kind", "split"?, "topic"?}``
(``split`` is ``train`` or ``holdout``; lines without it count as ``train``). Prints, as
Markdown, for the train split, the holdout split and all lines: accuracy, precision /
recall / F1 per kind and the confusion matrix (rows: gold label, columns: hint). Lines
with a ``topic`` (``safety``: a danger to people) get a summary of their own: how many
would open a case at once (hinted complaint or repair) and how many were left unclassified.

``--override FILE.json`` evaluates a region's keyword override (see
:meth:`intake.domain.kind_hint.KindKeywords.merged`). ``--errors`` lists the misclassified
lines of the *train* split only: the holdout split is for measuring, never for tuning.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intake.domain.kind_hint import KINDS, KindKeywords, classify_kind

__all__ = ["CASE_KINDS", "Report", "evaluate", "format_report", "format_topics", "load", "main"]

# The kinds cases opens a case for at once; a danger to people must land in one of them.
CASE_KINDS = ("complaint", "repair")


def load(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("kind") not in KINDS:
                raise ValueError(f"{path}:{number}: kind {row.get('kind')!r} is not one of {KINDS}")
            row.setdefault("split", "train")
            rows.append(row)
    return rows


@dataclass(frozen=True)
class KindStats:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Report:
    name: str
    total: int
    correct: int
    per_kind: dict[str, KindStats]
    confusion: dict[str, dict[str, int]]  # gold -> predicted -> count

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def macro_f1(self) -> float:
        return sum(s.f1 for s in self.per_kind.values()) / len(self.per_kind)


def evaluate(
    rows: Iterable[dict[str, Any]], keywords: KindKeywords | None = None, name: str = "all"
) -> Report:
    confusion = {g: dict.fromkeys(KINDS, 0) for g in KINDS}
    total = correct = 0
    for row in rows:
        hint = classify_kind(row.get("subject", ""), row.get("body", ""), keywords)
        confusion[row["kind"]][hint.kind.value] += 1
        total += 1
        correct += hint.kind.value == row["kind"]
    per_kind = {}
    for kind in KINDS:
        tp = confusion[kind][kind]
        predicted = sum(confusion[g][kind] for g in KINDS)
        support = sum(confusion[kind].values())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_kind[kind] = KindStats(precision, recall, f1, support)
    return Report(name, total, correct, per_kind, confusion)


def format_report(report: Report) -> str:
    lines = [
        f"### {report.name} ({report.total} contacts)",
        "",
        f"Accuracy **{report.accuracy:.1%}** ({report.correct}/{report.total}), "
        f"macro F1 {report.macro_f1:.2f}",
        "",
        "| kind | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, s in report.per_kind.items():
        lines.append(f"| {kind} | {s.precision:.2f} | {s.recall:.2f} | {s.f1:.2f} | {s.support} |")
    lines += [
        "",
        "Confusion matrix (rows: gold label, columns: hint):",
        "",
        "| gold \\ hint | " + " | ".join(KINDS) + " |",
        "|---|" + "---:|" * len(KINDS),
    ]
    for gold in KINDS:
        cells = " | ".join(str(report.confusion[gold][p]) for p in KINDS)
        lines.append(f"| {gold} | {cells} |")
    return "\n".join(lines) + "\n"


def format_topics(rows: Sequence[dict[str, Any]], keywords: KindKeywords | None = None) -> str:
    """Per topic and split: right kind, opens a case (complaint or repair), unclassified."""
    lines = [
        "### by topic",
        "",
        "| topic | split | contacts | right kind | opens a case | hinted consultation | unclassified (confidence 0) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("topic"):
            groups.setdefault((row["topic"], row["split"]), []).append(row)
    for (topic, split), group in sorted(groups.items()):
        hints = [classify_kind(r.get("subject", ""), r.get("body", ""), keywords) for r in group]
        n = len(group)
        right = sum(h.kind.value == r["kind"] for h, r in zip(hints, group, strict=True))
        case = sum(h.kind.value in CASE_KINDS for h in hints)
        consultation = sum(h.kind.value == "consultation" for h in hints)
        unclassified = sum(h.confidence == 0 for h in hints)
        lines.append(f"| {topic} | {split} | {n} | {right} ({right / n:.0%}) | {case} ({case / n:.0%}) "
                     f"| {consultation} | {unclassified} |")
    return "\n".join(lines) + "\n" if groups else ""


def _errors(rows: Iterable[dict[str, Any]], keywords: KindKeywords | None) -> str:
    out = []
    for row in rows:
        hint = classify_kind(row.get("subject", ""), row.get("body", ""), keywords)
        if hint.kind.value != row["kind"]:
            out.append(
                f"- gold {row['kind']}, hint {hint.kind.value} {hint.scores} "
                f"{' '.join(hint.evidence)}\n  {row['subject']} / {row['body']}"
            )
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m intake.domain.kind_hint_eval")
    parser.add_argument("path", help="labelled JSONL file")
    parser.add_argument("--override", help="JSON file with a region's keyword override")
    parser.add_argument(
        "--errors", action="store_true", help="list misclassified lines of the train split"
    )
    args = parser.parse_args(argv)

    keywords = KindKeywords.default()
    if args.override:
        keywords = keywords.merged(json.loads(Path(args.override).read_text(encoding="utf-8")))
    rows = load(args.path)
    train = [r for r in rows if r["split"] != "holdout"]
    holdout = [r for r in rows if r["split"] == "holdout"]

    parts = [format_report(evaluate(train, keywords, "train split"))]
    if holdout:
        parts.append(format_report(evaluate(holdout, keywords, "holdout split")))
    parts.append(format_report(evaluate(rows, keywords, "all")))
    if topics := format_topics(rows, keywords):
        parts.append(topics)
    sys.stdout.write("\n".join(parts))
    if args.errors:
        sys.stdout.write("\n## Misclassified (train split)\n\n" + _errors(train, keywords))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
