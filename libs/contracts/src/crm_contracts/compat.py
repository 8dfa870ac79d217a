"""Is a new JSON Schema of an event still backward compatible with the published one?

A consumer built on the published schema must keep working with events of the new one,
and events valid under the published schema must stay valid. So, between the old and the
new schema of one event type, these are breaking:

- a property removed (a rename is a removal plus an addition);
- a type changed or narrowed (a value the old schema accepted that the new one refuses,
  e.g. null no longer allowed, a string now limited to a format or a shorter length);
- a new required property, or an optional property made required;
- an enum value removed.

Additive changes are fine: a new optional property, a new enum value, a wider type.
Titles, descriptions, defaults and examples are documentation and never compared.
A breaking change needs a new event type and topic (`.v2`), not an edit of `.v1`.

    python -m crm_contracts.compat [PUBLISHED_DIR]   (default docs/events)

compares the current models with published schemas, e.g. those of the main branch in CI.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Schema = dict[str, Any]

# Bounds whose raising (lower bounds) or lowering (upper bounds) refuses old values.
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_EXACT_RULES = ("pattern", "format", "multipleOf")


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Every breaking change from `old` to `new`, one human-readable line each
    (`data.channel: enum value removed: 'letter'`); empty when `new` is compatible."""
    return _Comparison(old, new).compare(old, new, "")


class _Comparison:
    def __init__(self, old_root: Schema, new_root: Schema):
        self.old_root = old_root
        self.new_root = new_root

    def compare(self, old: Schema | bool, new: Schema | bool, path: str) -> list[str]:
        old_branches = self._branches(old, self.old_root)
        new_branches = self._branches(new, self.new_root)
        if any(_kind(b) == "any" for b in new_branches):
            return []
        old_kinds = _kinds(old_branches)
        new_kinds = _kinds(new_branches)
        if "any" in old_kinds:
            return [f"{_where(path)}: type narrowed from any value to {_names(new_kinds)}"]
        if not any(_accepts_kind(n, o) for o in old_kinds for n in new_kinds):
            return [f"{_where(path)}: type changed from {_names(old_kinds)} to {_names(new_kinds)}"]
        problems: list[str] = []
        for old_branch in old_branches:
            kind = _kind(old_branch)
            candidates = [b for b in new_branches if _accepts_kind(_kind(b), kind)]
            if not candidates:
                problems.append(f"{_where(path)}: type narrowed: {kind} no longer accepted")
                continue
            outcomes: list[list[str]] = [
                self._compare_same_kind(old_branch, b, kind, path) for b in candidates
            ]
            fewest: list[str] = min(outcomes, key=len)
            problems.extend(fewest)
        return _unique(problems)

    def _compare_same_kind(self, old: Schema, new: Schema, kind: str, path: str) -> list[str]:
        problems = _compare_values(old, new, path)
        problems += _compare_bounds(old, new, path)
        if kind == "object":
            problems += self._compare_objects(old, new, path)
        elif kind == "array":
            problems += self.compare(old.get("items", {}), new.get("items", {}), f"{path}[]")
        return problems

    def _compare_objects(self, old: Schema, new: Schema, path: str) -> list[str]:
        problems: list[str] = []
        old_props: Schema = old.get("properties", {})
        new_props: Schema = new.get("properties", {})
        old_required = set(old.get("required", ()))
        for name in sorted(old_props):
            child = _join(path, name)
            if name not in new_props:
                problems.append(f"{child}: property removed (or renamed)")
            else:
                problems += self.compare(old_props[name], new_props[name], child)
        for name in sorted(set(new.get("required", ())) - old_required):
            if name in old_props:
                problems.append(f"{_join(path, name)}: optional property became required")
            else:
                problems.append(f"{_join(path, name)}: new required property")
        old_extra = old.get("additionalProperties", True)
        new_extra = new.get("additionalProperties", True)
        if new_extra is False and old_extra is not False:
            problems.append(f"{_where(path)}: additional properties no longer allowed")
        elif isinstance(new_extra, dict) and old_extra is not False:
            problems += self.compare(
                old_extra if isinstance(old_extra, dict) else {}, new_extra, f"{_join(path, '*')}"
            )
        return problems

    def _branches(self, schema: Schema | bool, root: Schema) -> list[Schema]:
        """The alternatives a schema accepts, `$ref`s resolved and `anyOf`/`oneOf` and
        type lists flattened."""
        if schema is True:
            return [{}]
        if schema is False:
            return []
        schema = self._resolve(schema, root)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                rest = {k: v for k, v in schema.items() if k != key}
                return [
                    branch
                    for alternative in schema[key]
                    for branch in self._branches({**rest, **alternative}, root)
                ]
        if isinstance(schema.get("type"), list):
            return [{**schema, "type": t} for t in schema["type"]]
        return [schema]

    def _resolve(self, schema: Schema, root: Schema) -> Schema:
        seen: set[str] = set()
        while "$ref" in schema:
            ref = schema["$ref"]
            if ref in seen:
                raise ValueError(f"circular $ref {ref}")
            seen.add(ref)
            target: Any = root
            for part in ref.removeprefix("#/").split("/"):
                target = target[part]
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema


def _kind(schema: Schema) -> str:
    if "type" in schema:
        return str(schema["type"])
    values = _values(schema)
    if values is not None and values:
        return _json_type(next(iter(values)))
    return "any"


def _kinds(branches: list[Schema]) -> list[str]:
    return sorted({_kind(b) for b in branches})


def _accepts_kind(new_kind: str, old_kind: str) -> bool:
    return new_kind == old_kind or (new_kind == "number" and old_kind == "integer")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _values(schema: Schema) -> list[Any] | None:
    """The only values a schema allows (`enum` or `const`), or None for no such limit."""
    if "enum" in schema:
        return list(schema["enum"])
    if "const" in schema:
        return [schema["const"]]
    return None


def _compare_values(old: Schema, new: Schema, path: str) -> list[str]:
    new_values = _values(new)
    if new_values is None:
        return []
    old_values = _values(old)
    if old_values is None:
        return [f"{_where(path)}: type narrowed to the values {_quoted(new_values)}"]
    removed = [v for v in old_values if v not in new_values]
    if not removed:
        return []
    noun = "value" if len(removed) == 1 else "values"
    return [f"{_where(path)}: enum {noun} removed: {_quoted(removed)}"]


def _compare_bounds(old: Schema, new: Schema, path: str) -> list[str]:
    tightened = [
        key for key in _LOWER_BOUNDS if key in new and (key not in old or new[key] > old[key])
    ]
    tightened += [
        key for key in _UPPER_BOUNDS if key in new and (key not in old or new[key] < old[key])
    ]
    tightened += [key for key in _EXACT_RULES if key in new and new[key] != old.get(key)]
    return [
        f"{_where(path)}: type narrowed: {key} "
        + (f"{old[key]!r} -> {new[key]!r}" if key in old else f"{new[key]!r} added")
        for key in tightened
    ]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _where(path: str) -> str:
    return path or "(root)"


def _names(kinds: list[str]) -> str:
    return " or ".join(kinds)


def _quoted(values: list[Any]) -> str:
    return ", ".join(repr(v) for v in values)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def model_breaking_changes(published_dir: str | Path) -> list[str]:
    """Breaking changes of the registered v1 models against the JSON Schemas published in
    `published_dir` (e.g. docs/events as on the main branch), including removed types."""
    from crm_contracts.export import event_schema
    from crm_contracts.registry import EVENT_TYPES

    problems = []
    for path in sorted(Path(published_dir).glob("*.json")):
        type_ = path.stem
        if type_ not in EVENT_TYPES:
            problems.append(f"{type_}: event type removed")
            continue
        published = json.loads(path.read_text(encoding="utf-8"))
        problems += [
            f"{type_}: {problem}" for problem in breaking_changes(published, event_schema(type_))
        ]
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crm_contracts.compat",
        description="Compare the v1 event models with published JSON Schemas; exit 1 on a "
        "breaking change.",
    )
    parser.add_argument("published_dir", nargs="?", default="docs/events")
    args = parser.parse_args(argv)
    problems = model_breaking_changes(args.published_dir)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
