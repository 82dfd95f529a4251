"""Build a JSON value that satisfies a JSON schema, for the offline model.

Written by hand because the libraries that generate schema instances (e.g.
hypothesis-jsonschema) produce random, unreadable values; the offline model must
produce deterministic, readable ones that quote the request. It covers the subset
pydantic emits: objects, arrays, enums, $ref/$defs, anyOf, and length/range bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Chooses among enum values for a property; gets (property name, allowed values).
EnumChooser = Callable[[str, list[Any]], Any]
# Writes a string for a property; gets (property name, min length).
TextWriter = Callable[[str, int], str]
# Picks a number for a property; gets (property name, its schema); None: the default.
NumberPicker = Callable[[str, dict[str, Any]], float | None]


def build_instance(
    schema: dict[str, Any],
    *,
    choose: EnumChooser,
    write: TextWriter,
    boolean: bool = True,
    number: NumberPicker | None = None,
) -> Any:
    defs = schema.get("$defs", {})

    def build(node: dict[str, Any], name: str) -> Any:
        if "$ref" in node:
            return build(defs[node["$ref"].rsplit("/", 1)[-1]], name)
        if "enum" in node:
            return choose(name, list(node["enum"]))
        if "const" in node:
            return node["const"]
        for key in ("anyOf", "oneOf"):
            if key in node:
                options = [o for o in node[key] if o.get("type") != "null"] or node[key]
                return build(options[0], name)
        kind = node.get("type", "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object":
            properties: dict[str, Any] = node.get("properties", {})
            # Inside an array item, keep the item's index on each property name
            # ("task[1]") so the writer can make items differ.
            index = name[name.index("["):] if name.endswith("]") else ""
            return {key: build(sub, key + index) for key, sub in properties.items()}
        if kind == "array":
            count = max(int(node.get("minItems", 0)), min(3, int(node.get("maxItems", 3))))
            item = node.get("items", {"type": "string"})
            return [build(item, f"{name}[{i}]") for i in range(count)]
        if kind == "boolean":
            return boolean
        if kind in ("integer", "number"):
            picked = number(name, node) if number is not None else None
            if picked is not None:
                return int(picked) if kind == "integer" else picked
            low = node.get("minimum", node.get("exclusiveMinimum", 0))
            high = node.get("maximum", node.get("exclusiveMaximum", low + 10))
            value = low + (high - low) * 0.8
            return int(value) if kind == "integer" else round(value, 2)
        if kind == "null":
            return None
        text = write(name, int(node.get("minLength", 1)))
        if "maxLength" in node:
            text = text[: int(node["maxLength"])]
        return text

    return build(schema, "value")
