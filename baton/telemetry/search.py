"""Baton's custom search attributes: what makes runs findable in the Web UI and `list`.

Every pattern run upserts these as it progresses (workflows/base.py): who ran
(`BatonTeam`), how (`BatonPattern`), where it stands (`BatonStatus`) and what it
cost (`BatonCostUsd`, `BatonTokens`, `BatonModels`). The names are an interface:
saved Web UI queries and `starter.py list` depend on them.

A server must know an attribute before a run can upsert it; an unknown one fails
every workflow task of the run until it exists. So the dev server is started with
them (`dev_server_search_attribute_args`), and the worker registers them on other
servers (`ensure_search_attributes`). Where it may not (Temporal Cloud, a locked-down
cluster), it says which command does, and the runs it starts go unsearched instead
of stuck (`patch_activation`).

Search attributes are stored in plain text, even when payloads are encrypted: only
names, statuses, model names and numbers go into them, never prompts or answers.
What a run with BatonStatus `waiting_approval` waits for is in its memo, a payload
(encrypted with the others): `pending` reads both from one list query (baton/core/waiting.py).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import (
    SearchAttributeIndexedValueType,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import PatchActivationInput

TEAM = SearchAttributeKey.for_keyword("BatonTeam")
PATTERN = SearchAttributeKey.for_keyword("BatonPattern")
STATUS = SearchAttributeKey.for_keyword("BatonStatus")
COST_USD = SearchAttributeKey.for_float("BatonCostUsd")
TOKENS = SearchAttributeKey.for_int("BatonTokens")
MODELS = SearchAttributeKey.for_keyword_list("BatonModels")

SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[Any], ...] = (
    TEAM, PATTERN, STATUS, COST_USD, TOKENS, MODELS)

def quoted(value: str) -> str:
    """`value` as a visibility-query string literal: a workflow id or a name can hold
    quotes, and must not change the query it is put in."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def nested_runs(workflow_id: str) -> str:
    """The visibility query for every run nested under `workflow_id` (its children
    are named `<id>/<member>`)."""
    return f"WorkflowId STARTS_WITH {quoted(workflow_id + '/')}"


def starting_attributes(member: str, pattern: str) -> TypedSearchAttributes:
    """What a run is found by from its first moment, given by whoever starts it. Such a
    run upserts only what changes later (its status, its spending): each upsert is a
    visibility write, about 5 ms of the dev server's CPU here, and a patch marker
    would upsert `TemporalChangeVersion` too."""
    return TypedSearchAttributes([SearchAttributePair(TEAM, member),
                                  SearchAttributePair(PATTERN, pattern),
                                  SearchAttributePair(STATUS, "running")])


def unknown_search_attributes(err: RPCError) -> bool:
    """Whether a start was refused because the namespace lacks an attribute it carried."""
    return (err.status == RPCStatusCode.INVALID_ARGUMENT
            and "search attribute" in err.message.lower())


# The patch that gates the upserts of a run started without `starting_attributes`:
# runs recorded before Baton had search attributes (tests/histories/) replay without
# them, since an upsert is a command that replay checks against the history.
PATCH_ID = "baton-search-attributes"

# The type names the Temporal CLI and the dev server's --search-attribute take.
_TYPE_NAMES = {
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}

log = logging.getLogger(__name__)


class SearchAttributesError(RuntimeError):
    """The server lacks Baton's search attributes and Baton may not (or cannot) add them."""


def type_name(key: SearchAttributeKey[Any]) -> str:
    return _TYPE_NAMES[key.indexed_value_type]


def dev_server_search_attribute_args() -> list[str]:
    """`temporal server start-dev` flags that register every Baton search attribute."""
    args: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}={type_name(key)}"]
    return args


def create_commands(keys: list[SearchAttributeKey[Any]], namespace: str,
                    address: str | None = None) -> list[str]:
    """The `temporal operator search-attribute create` commands that add `keys` (one
    per type: the command takes several names but one type)."""
    by_type: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        by_type[type_name(key)].append(key.name)
    where = f"--address {address} " if address else ""
    return [f"temporal operator search-attribute create {where}--namespace {namespace} "
            + " ".join(f"--name {name}" for name in names) + f" --type {kind}"
            for kind, names in by_type.items()]


async def register_search_attributes(client: Client) -> list[str]:
    """Add the Baton search attributes the client's namespace lacks; the names added.

    Idempotent: attributes that exist with the right type are left alone. Raises
    SearchAttributesError, with the commands an operator can run instead, when the
    server refuses (no permission, Temporal Cloud) or one exists with another type.
    """
    namespace = client.namespace
    address = client.service_client.config.target_host
    try:
        existing = await _custom_attributes(client)
    except RPCError as err:
        raise _refused(err, list(SEARCH_ATTRIBUTES), namespace, address) from None
    clashes = [f"{key.name} is {_TYPE_NAMES.get(SearchAttributeIndexedValueType(found), found)}"
               f", Baton needs {type_name(key)}"
               for key in SEARCH_ATTRIBUTES
               if (found := existing.get(key.name)) is not None
               and found != int(key.indexed_value_type)]
    if clashes:
        raise SearchAttributesError(
            f"search attributes of namespace {namespace} have other types than Baton's: "
            f"{'; '.join(clashes)}. Remove them (temporal operator search-attribute "
            f"remove --namespace {namespace} --name NAME) and start the worker again.")
    missing = [key for key in SEARCH_ATTRIBUTES if key.name not in existing]
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={key.name: IndexedValueType.ValueType(key.indexed_value_type)
                               for key in missing}))
    except RPCError as err:
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise _refused(err, missing, namespace, address) from None
        # Another worker added them first: fine if they now have the right types.
        return await register_search_attributes(client)
    return [key.name for key in missing]


async def ensure_search_attributes(client: Client) -> bool:
    """Register the attributes at worker start; on refusal log the commands that would
    and return False (the worker serves on; see `patch_activation`). True when usable."""
    try:
        added = await register_search_attributes(client)
    except SearchAttributesError as err:
        log.error("%s Until then, and until this worker restarts, the runs it starts "
                  "carry no search attributes (`starter.py list` and Web UI queries "
                  "will not find them).", err)
        return False
    if added:
        log.info("registered search attributes in namespace %s: %s", client.namespace,
                 ", ".join(added))
    return True


def patch_activation(searchable: bool) -> Callable[[PatchActivationInput], bool]:
    """A worker's `patch_activation_callback`: whether a run that starts on it turns
    the upserts on. The SDK asks only outside replay; the answer is then recorded by
    the patch marker, so the run replays the same way on any worker."""
    def activate(patch: PatchActivationInput) -> bool:
        return searchable or patch.patch_id != PATCH_ID
    return activate


async def _custom_attributes(client: Client) -> dict[str, int]:
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace))
    return dict(response.custom_attributes)


def _refused(err: RPCError, missing: list[SearchAttributeKey[Any]],
             namespace: str, address: str) -> SearchAttributesError:
    commands = "\n  ".join(create_commands(missing, namespace, address))
    return SearchAttributesError(
        f"the server refused to register Baton's search attributes in namespace "
        f"{namespace} ({err.status.name if err.status else 'error'}: {err.message}). "
        f"An operator (or a key with the namespace's admin role) can add them with:\n"
        f"  {commands}")
