"""What a run left on the server: its histories and its nested runs', searched as text.

`history.to_json()` holds payloads base64-encoded, so a substring search of it never
sees what a payload carries (a prompt, a tool result, a leaked key): `history_text`
adds every payload decoded.
"""

from __future__ import annotations

import re

from google.protobuf.message import Message as Proto
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowHistory

from baton.runtime.payload_store import FileStore, payload_store

# A workflow task failure with these causes is the server's normal bookkeeping (a new
# event arrived while the task ran), not a failing workflow.
BENIGN_TASK_FAILURES = {
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW,
}


async def related_histories(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """The history of a run and of every nested run it started, recursively."""
    histories: list[WorkflowHistory] = []
    pending = [workflow_id]
    while pending:
        history = await client.get_workflow_handle(pending.pop()).fetch_history()
        histories.append(history)
        for event in history.events:
            if event.HasField("child_workflow_execution_started_event_attributes"):
                pending.append(event.child_workflow_execution_started_event_attributes
                               .workflow_execution.workflow_id)
    return histories


def failing_tasks(history: WorkflowHistory) -> list[str]:
    """Workflow task failures that are not the server's bookkeeping."""
    found = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            attrs = event.workflow_task_failed_event_attributes
            if attrs.cause not in BENIGN_TASK_FAILURES:
                cause = WorkflowTaskFailedCause.Name(attrs.cause)
                found.append(f"{history.workflow_id}: {cause}: {attrs.failure.message[:300]}")
    return found


def payloads(history: WorkflowHistory) -> list[Payload]:
    """Every payload anywhere in a history (inputs, results, failures' details, memo)."""
    found: list[Payload] = []

    def walk(message: Proto) -> None:
        if isinstance(message, Payload):
            found.append(message)
            return
        for _, value in message.ListFields():
            if isinstance(value, Proto):
                walk(value)
            elif not isinstance(value, str | bytes) and hasattr(value, "__len__"):
                # Repeated fields and maps (protobuf containers have no __iter__ attribute).
                for item in value.values() if hasattr(value, "values") else list(value):
                    if isinstance(item, Proto):
                        walk(item)

    for event in history.events:
        walk(event)
    return found


def largest_payload(history: WorkflowHistory) -> int:
    """Bytes of the largest payload anywhere in a history."""
    return max((len(p.data) for p in payloads(history)), default=0)


def history_text(history: WorkflowHistory) -> str:
    """A history as searchable text: its JSON and every payload decoded, those stored
    outside the history (baton/runtime/payload_store.py's file store) included."""
    decoded = [p.data.decode("utf-8", "replace") for p in payloads(history)]
    return "\n".join([history.to_json(), *decoded, *stored_texts(decoded)])


DIGEST = re.compile(r"\b[0-9a-f]{64}\b")


def stored_texts(decoded: list[str]) -> list[str]:
    """The payloads the file store holds for the references among `decoded`."""
    store = payload_store()
    if not isinstance(store, FileStore):
        return []
    texts = []
    for digest in sorted({d for text in decoded for d in DIGEST.findall(text)}):
        path = store.path_of(digest)
        if path.is_file():
            texts.append(Payload.FromString(path.read_bytes()).data.decode("utf-8", "replace"))
    return texts
