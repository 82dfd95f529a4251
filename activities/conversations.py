"""Conversations kept in the payload store, so a model call need not carry them again.

An agent in a long tool loop calls its model with the whole conversation every turn;
recorded inline, the history would grow with calls times context (the 50 MB
termination reported in temporalio/sdk-python#1890). Instead, after a call that asked
for tools, `call_model` stores the call's messages here when they are at least
`BATON_CONVERSATION_OFFLOAD_BYTES` (default 16 KiB) and returns a `ConversationRef`;
the agent's next call carries that reference plus only its new messages
(workflows/agent_call.py), and `full_messages` puts the whole back together. Each
object holds only what its call added and names the one before it, so a conversation
is stored once in all; the worker keeps the latest whole conversations in memory
(`BATON_CONVERSATION_CACHE_MB`, default 64), so it seldom reads a chain back.

The object goes through the worker's own data converter: the payload converter, the
payload codec (so with `BATON_ENCRYPTION_KEY` it is ciphertext bound to the run's
workflow, like every payload of the run) and the driver of its `ExternalStorage`
(baton/runtime/payload_store.py: files or S3). The driver names the object by the
SHA-256 of its bytes and checks them on every read, so a retry or a later call reads
exactly what was stored, and a deleted or altered object fails the call with a typed,
non-retryable error naming it and the store.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import cast

from pydantic import BaseModel
from temporalio import activity
from temporalio.converter import (
    DataConverter,
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
    StorageDriverWorkflowInfo,
    WorkflowSerializationContext,
)

from baton.core.errors import PayloadStoreUnavailable, StoredPayloadCorrupt
from baton.core.model_io import ConversationRef, Message, ModelRequest

OFFLOAD_ENV = "BATON_CONVERSATION_OFFLOAD_BYTES"
CACHE_ENV = "BATON_CONVERSATION_CACHE_MB"
DEFAULT_CACHE_MB = 64
# Below this a conversation costs the history little per call, and the Web UI shows
# the call's whole input.
DEFAULT_OFFLOAD_BYTES = 16 * 1024


class StoredConversation(BaseModel):
    """What is stored: the messages a call added to the conversation its `parent`
    names (the whole conversation when there is no parent). A chain, so a long
    conversation is stored once in all, not once per call."""

    parent: ConversationRef | None = None
    messages: list[Message]


class RecentConversations:
    """Whole conversations this worker stored or read lately, by their object's digest,
    so the next call of an agent (most often on the same worker) reads none of its
    chain; bounded by the characters it holds. Any worker without them walks the chain
    from the store."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self._entries: OrderedDict[str, tuple[list[Message], int]] = OrderedDict()
        self._chars = 0

    def get(self, ref: ConversationRef) -> list[Message] | None:
        found = self._entries.get(_key(ref))
        if found is None:
            return None
        self._entries.move_to_end(_key(ref))
        return found[0]

    def put(self, ref: ConversationRef, messages: list[Message]) -> None:
        chars = sum(len(m.content) for m in messages)
        if chars > self.max_chars or _key(ref) in self._entries:
            return
        self._entries[_key(ref)] = (messages, chars)
        self._chars += chars
        while self._chars > self.max_chars:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._chars -= dropped


def _key(ref: ConversationRef) -> str:
    return f"{ref.driver}:{ref.claim.get('hash_value', '')}:{ref.claim.get('key', '')}"


def _whole_number(name: str, default: int, unit: str) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise ValueError(f"{name}={text!r} is not a number of {unit} (a whole number, "
                         "0 or more)")
    return int(text)


def offload_bytes() -> int:
    """The worker's threshold; a value that is not a whole number is refused by name."""
    return _whole_number(OFFLOAD_ENV, DEFAULT_OFFLOAD_BYTES, "bytes")


def recent_conversations() -> RecentConversations:
    """The worker's cache, `BATON_CONVERSATION_CACHE_MB` of text (0: none)."""
    return RecentConversations(_whole_number(CACHE_ENV, DEFAULT_CACHE_MB, "megabytes")
                               * 1024 * 1024)


def _run_converter() -> DataConverter:
    """The worker's data converter, in the context of the calling workflow (the codec
    binds what it encrypts to that workflow)."""
    info = activity.info()
    return activity.client().data_converter.with_context(WorkflowSerializationContext(
        namespace=info.namespace, workflow_id=info.workflow_id or ""))


def _drivers(converter: DataConverter) -> dict[str, StorageDriver]:
    storage = converter.external_storage
    return {} if storage is None else {driver.name(): driver for driver in storage.drivers}


async def full_messages(request: ModelRequest,
                        recent: RecentConversations) -> list[Message]:
    """The call's whole conversation: the stored conversation it names, then its own
    messages."""
    if request.prefix is None:
        return request.messages
    return [*await _conversation(request.prefix, request.agent, recent), *request.messages]


async def _conversation(ref: ConversationRef, agent: str,
                        recent: RecentConversations) -> list[Message]:
    """The whole conversation `ref` names: its chain read back to the nearest one this
    worker holds, or to its start."""
    converter = _run_converter()
    chain: list[tuple[ConversationRef, StoredConversation]] = []
    known: list[Message] = []
    cursor: ConversationRef | None = ref
    while cursor is not None:
        if (held := recent.get(cursor)) is not None:
            known = held
            break
        part = await _read(converter, cursor, agent)
        chain.append((cursor, part))
        cursor = part.parent
    messages = list(known)
    for link, part in reversed(chain):
        messages += part.messages
        if len(messages) != link.messages:
            raise StoredPayloadCorrupt(
                f"the stored conversation {dict(link.claim)} holds {len(messages)} "
                f"messages where its reference says {link.messages}: refused")
    recent.put(ref, messages)
    return messages


async def _read(converter: DataConverter, ref: ConversationRef,
                agent: str) -> StoredConversation:
    driver = _drivers(converter).get(ref.driver)
    if driver is None:
        raise PayloadStoreUnavailable(
            f"the conversation of {agent} is stored in {ref.driver!r}, which this "
            f"worker does not have (it has: {', '.join(_drivers(converter)) or 'none'}); "
            "every worker of a task queue needs the same BATON_PAYLOAD_* settings")
    [payload] = await driver.retrieve(StorageDriverRetrieveContext(),
                                      [StorageDriverClaim(claim_data=ref.claim)])
    if converter.payload_codec is not None:
        [payload] = await converter.payload_codec.decode([payload])
    [part] = converter.payload_converter.from_payloads([payload], [StoredConversation])
    return cast(StoredConversation, part)


async def store_conversation(request: ModelRequest, conversation: list[Message],
                             turn: Message, threshold: int,
                             recent: RecentConversations) -> ConversationRef | None:
    """The conversation after `request` (its whole `conversation`, as `full_messages`
    made it, then the model's `turn`) stored for the agent's next call: only what the
    request added to its prefix. None when the conversation is under `threshold` bytes
    (not worth it) or this worker has no payload store."""
    whole = [*conversation, turn]
    added = StoredConversation(parent=request.prefix,
                               messages=[*request.messages, turn])
    if request.prefix is None and len(added.__pydantic_serializer__.to_json(added)) < threshold:
        return None
    converter = _run_converter()
    drivers = list(_drivers(converter).values())
    if not drivers:
        return None
    driver = drivers[0]  # Baton's converters carry one store (payload_store.py)
    payloads = converter.payload_converter.to_payloads([added])
    if converter.payload_codec is not None:
        payloads = await converter.payload_codec.encode(payloads)
    info = activity.info()
    target = StorageDriverWorkflowInfo(namespace=info.namespace,
                                       id=info.workflow_id, run_id=info.workflow_run_id,
                                       type=info.workflow_type)
    [claim] = await driver.store(StorageDriverStoreContext(target=target), payloads)
    ref = ConversationRef(driver=driver.name(), claim=dict(claim.claim_data),
                          messages=len(whole))
    recent.put(ref, whole)
    return ref
