"""`starter.py history`: a run's event history with its payloads readable.

A history as recorded holds every input, result, memo and failure detail as a
payload: base64 of the converter's bytes, and ciphertext when payloads are
encrypted. `readable(history, converter)` decodes each one with the client's data
converter (its codec first, so the client's key decrypts them) and puts the value
in its place; a payload this client cannot decode stays as recorded, its encoding
shown as text, and is counted. `starter.py history --raw` and `-o FILE` keep the
history as recorded, which is what `replay --file` reads.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter

from baton.runtime.codec import payloads_in

# Marks a payload replaced by its decoded value while the history becomes JSON.
_MARK = "baton-decoded-payload"


@dataclass
class Readable:
    """A history as JSON, payloads decoded; `undecoded`: how many could not be."""

    history: dict[str, Any]
    undecoded: int


async def readable(history: WorkflowHistory, converter: DataConverter) -> Readable:
    copy = WorkflowHistory(history.workflow_id, [type(e)() for e in history.events])
    for mine, theirs in zip(copy.events, history.events, strict=True):
        mine.CopyFrom(theirs)
    values: list[Any] = []
    undecoded = 0
    for event in copy.events:
        for payload in payloads_in(event):
            value, ok = await _decoded(payload, converter)
            undecoded += not ok
            values.append(value)
            payload.Clear()
            payload.metadata[_MARK] = str(len(values) - 1).encode()
    return Readable(_substituted(copy.to_json_dict(), values), undecoded)


async def _decoded(payload: Payload, converter: DataConverter) -> tuple[Any, bool]:
    """The payload's value, and whether it could be decoded; else how it was recorded."""
    try:
        if converter.payload_codec is not None:
            [payload] = await converter.payload_codec.decode([payload])
        return _value(payload), True
    except Exception:  # a key this client lacks, or an encoding it does not know
        return _as_recorded(payload), False


def _value(payload: Payload) -> Any:
    encoding = payload.metadata.get("encoding", b"").decode(errors="replace")
    if encoding in ("json/plain", "json/protobuf"):
        return json.loads(payload.data)
    if encoding == "binary/null":
        return None
    raise ValueError(f"no readable form for a {encoding!r} payload")


def _as_recorded(payload: Payload) -> dict[str, Any]:
    """A payload as recorded, its metadata as text where it is text."""
    return {"metadata": {key: value.decode(errors="replace")
                         for key, value in payload.metadata.items()},
            "data": base64.b64encode(payload.data).decode()}


def _substituted(node: Any, values: list[Any]) -> Any:
    """`node` with every marked payload replaced by its value."""
    if isinstance(node, dict):
        mark = node.get("metadata", {}).get(_MARK) if len(node) == 1 else None
        if mark is not None:
            return values[int(base64.b64decode(mark))]
        return {key: _substituted(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_substituted(item, values) for item in node]
    return node
