"""Payload encryption: what Temporal stores of a run is unreadable without Baton's key.

With `BATON_ENCRYPTION_KEY` set (32 random bytes in base64), the data converter
(`baton.runtime.temporal.data_converter`) carries an `EncryptionCodec`: every payload a
client or worker hands to Temporal (workflow and activity inputs and results,
memos, signal, query and update arguments, summaries, failure messages and details)
is encrypted with AES-GCM before it leaves the process and decrypted when it comes
back. The server, its database and anyone reading histories see ciphertext; prompts,
answers and provider output stay with the processes that hold the key.

Each encrypted payload names its key by id (a hash of the key, never the key), so a
process decrypts with whichever of its keys was used: the current one, or an older
one in `BATON_DECRYPTION_KEYS` (comma-separated) while histories written before a
rotation are still around. A process with only `BATON_DECRYPTION_KEYS` reads
encrypted payloads and writes plain ones (the first step of switching encryption on
or off across a fleet). A payload without the `binary/encrypted` encoding passes
through unchanged, so runs recorded before encryption was switched on still replay.

Integrity. Encryption alone lets anyone who can reach the server hand a worker a
plain payload (`temporal workflow update execute --input '{...}'`) or paste a
ciphertext from one run's history into another's. So:
- each payload encrypted where the SDK names its workflow (its serialization
  context: the workflow's own payloads, its activities', a child's) is bound to that
  workflow: the namespace and workflow id are written beside it (`encryption-namespace`,
  `encryption-workflow-id`) and authenticated as AES-GCM associated data. A process
  decoding it for another workflow gets a `MisboundPayload` refusal; altering the
  names fails authentication. Readers with no context (the codec server behind the
  Web UI, which is told only the namespace) still decrypt, with the names from the
  payload. A payload without the names (written before binding, or by the codec
  server's /encode, which knows no workflow) is read as before: it is not bound.
  One quirk of the SDK (temporalio 1.35): it encrypts a nested run's summary and
  details (the Web UI's user metadata) in the parent's context, so they are bound to
  the parent; the codec server shows them, a Python client's `describe()` of the
  nested run would refuse its `static_summary()`. Baton reads neither.
- a worker that requires encryption (`BATON_REQUIRE_ENCRYPTION=1`, the default
  whenever `BATON_ENCRYPTION_KEY` is set) refuses every plain payload it is handed
  with a `PlaintextRefused` refusal.
Refusals (those two, and a payload this process cannot decrypt) are not raised by the
codec when the SDK calls it: the SDK decodes every payload of a workflow activation at
once, and an error there fails the whole run (or, retryable, retries its task
forever), which would let one forged signal, Update or query end a run. The codec
swaps the payload for an inert "refused" payload instead, and Baton's payload
converter raises the typed, non-retryable refusal where that value is converted: a
run's input fails the run at once; an Update is rejected (never written to history);
a signal is dropped with the SDK's "dropping the signal" error log; a query fails;
an activity fails. Called directly, without a context (the codec server), the codec
raises them.

Not covered, by Temporal's design: search attributes (the server indexes them),
workflow and run ids, workflow, activity, signal and update names, task queues,
timestamps, retry counts, and the patch ids the SDK's core records in markers.
Baton puts no prompt text into any of these (while encrypting, run ids are named
after the team, not the prompt: baton/runtime/launch.py).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import WorkflowQueryFailedError
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import (
    ActivitySerializationContext,
    DefaultFailureConverter,
    EncodingPayloadConverter,
    PayloadCodec,
    PayloadConverter,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)
from temporalio.exceptions import ApplicationError

from baton.core.errors import MisboundPayload, PlaintextRefused, UndecryptablePayload

KEY_ENV = "BATON_ENCRYPTION_KEY"
OLD_KEYS_ENV = "BATON_DECRYPTION_KEYS"
REQUIRE_ENV = "BATON_REQUIRE_ENCRYPTION"
ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NAMESPACE_METADATA = "encryption-namespace"
WORKFLOW_METADATA = "encryption-workflow-id"
# What the associated data of a bound payload begins with; a new layout gets a new one.
BINDING_VERSION = "baton-payload-binding/1"
# An in-memory stand-in for a refused payload, between the codec and the converter;
# it carries the refusal's message only, never the refused content.
REFUSED_ENCODING = "binary/baton-refused"
REFUSED_TYPE_METADATA = "refused-type"
REFUSED_KEY_METADATA = "refused-key-id"
# How a PlaintextRefused message begins; a refused query reaches its client as this
# text alone (Temporal passes a query's failure on as a message).
PLAINTEXT_REFUSAL = "this worker requires encrypted payloads"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the size AES-GCM is specified and fastest for
MAKE_KEY = 'python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"'


class EncryptionKeyError(ValueError):
    """A key variable holds something that is not a usable key; says which and why."""


def key_id(key: bytes) -> str:
    """The id stored beside each payload: names the key without revealing it."""
    return hashlib.sha256(b"baton-payload-key:" + key).hexdigest()[:16]


def parse_key(text: str, where: str) -> bytes:
    """A key from its base64 text; `where` names its variable in the error."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        # Never echo the value: it may be a real key pasted with a typo.
        raise EncryptionKeyError(
            f"{where} is not base64; it takes {KEY_BYTES} random bytes in base64 "
            f"(44 characters), made with: {MAKE_KEY}") from None
    if len(key) != KEY_BYTES:
        raise EncryptionKeyError(
            f"{where} decodes to {len(key)} bytes, not {KEY_BYTES}; it takes "
            f"{KEY_BYTES} random bytes in base64 (44 characters), made with: {MAKE_KEY}")
    return key


def keys_from_env(environ: Mapping[str, str] | None = None) -> tuple[bytes | None, list[bytes]]:
    """(current key or None, older keys) from the environment; EncryptionKeyError when
    either variable holds something that is not a key."""
    environ = os.environ if environ is None else environ
    text = environ.get(KEY_ENV, "").strip()
    current = parse_key(text, KEY_ENV) if text else None
    old = []
    entries = [e.strip() for e in environ.get(OLD_KEYS_ENV, "").split(",")]
    if any(entries) and not all(entries):
        raise EncryptionKeyError(f"{OLD_KEYS_ENV} has an empty entry; it takes keys "
                                 f"separated by commas, each as {KEY_ENV} takes it")
    for number, entry in enumerate(e for e in entries if e):
        old.append(parse_key(entry, f"{OLD_KEYS_ENV} (key {number + 1})"))
    return current, old


def encrypting(environ: Mapping[str, str] | None = None) -> bool:
    """Whether new payloads are encrypted (BATON_ENCRYPTION_KEY is set)."""
    return bool((os.environ if environ is None else environ).get(KEY_ENV, "").strip())


def requires_encryption(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a worker refuses plain payloads: BATON_REQUIRE_ENCRYPTION=1 or 0, and
    when unset (or empty), whenever BATON_ENCRYPTION_KEY is set. EncryptionKeyError for
    any other value, and for 1 without a key (the worker would write plain text)."""
    environ = os.environ if environ is None else environ
    text = environ.get(REQUIRE_ENV, "").strip()
    if text not in ("", "0", "1"):
        raise EncryptionKeyError(f"{REQUIRE_ENV}={text!r} is not accepted; it takes 1 (refuse "
                                 f"plain payloads) or 0 (accept them); unset, it is 1 "
                                 f"whenever {KEY_ENV} is set")
    if text == "1" and not encrypting(environ):
        raise EncryptionKeyError(f"{REQUIRE_ENV}=1 needs {KEY_ENV}: a worker that refuses "
                                 "plain payloads must encrypt its own")
    return text == "1" or (text == "" and encrypting(environ))


@dataclass(frozen=True)
class Binding:
    """The workflow a payload belongs to: written beside its ciphertext and
    authenticated with it, so it cannot be moved to another workflow's history."""

    namespace: str
    workflow_id: str

    @classmethod
    def of(cls, context: SerializationContext) -> Binding | None:
        """The workflow of a serialization context; None for one without a workflow
        (a standalone activity, a Nexus operation), whose payloads are not bound."""
        if isinstance(context, WorkflowSerializationContext | ActivitySerializationContext) \
                and context.workflow_id:
            return cls(context.namespace, context.workflow_id)
        return None

    @classmethod
    def written_on(cls, payload: Payload) -> Binding | None:
        if WORKFLOW_METADATA not in payload.metadata:
            return None  # written before binding, or without a context
        return cls(payload.metadata.get(NAMESPACE_METADATA, b"").decode(errors="replace"),
                   payload.metadata[WORKFLOW_METADATA].decode(errors="replace"))

    def metadata(self) -> dict[str, bytes]:
        return {NAMESPACE_METADATA: self.namespace.encode(),
                WORKFLOW_METADATA: self.workflow_id.encode()}

    def associated_data(self) -> bytes:
        # A JSON list: no workflow id can be made to read as another namespace's.
        return json.dumps([BINDING_VERSION, self.namespace, self.workflow_id]).encode()

    def describe(self) -> str:
        return f"workflow {self.workflow_id!r} in namespace {self.namespace!r}"


Refusal = UndecryptablePayload | PlaintextRefused | MisboundPayload


def refused(error: Refusal) -> Payload:
    """The inert payload that stands for a refused one (see the module docstring)."""
    key = error.key_id if isinstance(error, UndecryptablePayload) else ""
    return Payload(metadata={"encoding": REFUSED_ENCODING.encode(),
                             REFUSED_TYPE_METADATA: error.TYPE.encode(),
                             REFUSED_KEY_METADATA: key.encode()},
                   data=error.message.encode())


def refusal_of(payload: Payload) -> Refusal:
    kind = payload.metadata.get(REFUSED_TYPE_METADATA, b"").decode(errors="replace")
    message = payload.data.decode(errors="replace")
    if kind == UndecryptablePayload.TYPE:
        key = payload.metadata.get(REFUSED_KEY_METADATA, b"").decode(errors="replace")
        return UndecryptablePayload(message, key)
    return MisboundPayload(message) if kind == MisboundPayload.TYPE else PlaintextRefused(message)


class RefusedPayloadConverter(EncodingPayloadConverter):
    """Raises the refusal a refused payload stands for, wherever its value is read."""

    @property
    def encoding(self) -> str:
        return REFUSED_ENCODING

    def to_payload(self, value: Any) -> Payload | None:
        return None  # never a value's converter

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        raise refusal_of(payload)


class BatonPayloadConverter(PydanticPayloadConverter):
    """Pydantic's JSON converter, which also turns a refused payload into its refusal."""

    def __init__(self) -> None:
        super().__init__()
        self._set_converters(*self.converters.values(), RefusedPayloadConverter())


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    """AES-GCM over each whole serialized payload, metadata included, so the original
    encoding (json/plain, binary/null, ...) is hidden too and restored exactly.

    The SDK hands each operation a copy made by `with_context`, which knows the
    workflow the payloads belong to: that copy binds what it encrypts to the workflow
    and refuses what is bound to another (see the module docstring). The codec the
    data converter holds has no context: it neither binds nor checks.

    Encryption is CPU work of microseconds per payload and needs no I/O, so the work
    is done synchronously (`encode_payloads`/`decode_payloads`); the codec server
    calls those directly from its threads.
    """

    def __init__(self, key: bytes | None, old_keys: Sequence[bytes] = (), *,
                 refuse_plaintext: bool = False) -> None:
        super().__init__()
        self._current = (key_id(key), AESGCM(key)) if key is not None else None
        self._keys = {key_id(k): AESGCM(k) for k in old_keys}
        if self._current is not None:
            self._keys[self._current[0]] = self._current[1]
        self._origin = {key_id(k): OLD_KEYS_ENV for k in old_keys}
        if key is not None:
            self._origin[key_id(key)] = KEY_ENV
        self._refuse_plaintext = refuse_plaintext
        self._check_namespace = True
        self._in_context = False  # set on the copies with_context makes
        self._binding: Binding | None = None

    def with_context(self, context: SerializationContext) -> Self:
        bound = copy.copy(self)  # shares the keys: AESGCM objects hold no per-call state
        bound._in_context = True
        bound._binding = Binding.of(context)
        return bound

    def refusing_plaintext(self, *, check_namespace: bool = True) -> EncryptionCodec:
        """This codec for a worker that requires encryption. `check_namespace=False`
        is for the Replayer, which replays under a namespace of its own (a history
        does not record its namespace): it checks workflow ids only."""
        worker = copy.copy(self)
        worker._refuse_plaintext = True
        worker._check_namespace = check_namespace
        return worker

    @property
    def refuses_plaintext(self) -> bool:
        return self._refuse_plaintext

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EncryptionCodec | None:
        """The codec the environment asks for, or None when neither variable is set."""
        current, old = keys_from_env(environ)
        if current is None and not old:
            return None
        return cls(current, old)

    @property
    def key_id(self) -> str | None:
        """Id of the key new payloads are encrypted with (None: decrypt only)."""
        return self._current[0] if self._current else None

    def encode_payloads(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self._current is None:
            return list(payloads)
        kid, aead = self._current
        binding = self._binding
        metadata = {"encoding": ENCODING, KEY_ID_METADATA: kid.encode(),
                    **(binding.metadata() if binding else {})}
        associated = binding.associated_data() if binding else None
        encoded = []
        for payload in payloads:
            # A random 96-bit nonce per payload: under one key, collisions stay
            # negligible far beyond any history's payload count (NIST's 2^32 bound).
            nonce = os.urandom(NONCE_BYTES)
            sealed = aead.encrypt(nonce, payload.SerializeToString(), associated)
            encoded.append(Payload(metadata=metadata, data=nonce + sealed))
        return encoded

    def decode_payloads(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decode(payload) for payload in payloads]

    def _decode(self, payload: Payload) -> Payload:
        try:
            return self._open(payload)
        except (UndecryptablePayload, PlaintextRefused, MisboundPayload) as refusal:
            if not self._in_context:
                raise  # a direct caller (the codec server, a test): the error is its answer
            return refused(refusal)  # for the SDK: see the module docstring

    def _open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            # An empty payload carries nothing to act on; the converter refuses it.
            if self._refuse_plaintext and (payload.metadata or payload.data):
                raise PlaintextRefused(
                    f"{PLAINTEXT_REFUSAL} ({REQUIRE_ENV} is on) and was handed one in plain "
                    f"text; it was not acted on. Send it with {KEY_ENV} set as the workers "
                    "have it")
            return payload
        kid = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        aead = self._keys.get(kid)
        if aead is None:
            raise UndecryptablePayload(
                f"a payload is encrypted with key id {kid or '(none)'!r}, which the "
                f"process decoding it does not hold (it holds {self._describe_keys()}); "
                f"set that key in {OLD_KEYS_ENV} (or {KEY_ENV}) for every worker and "
                "client, then `starter.py reset <workflow-id>` resumes a run that "
                "failed on it", kid)
        written = Binding.written_on(payload)
        data = payload.data
        try:
            plain = aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:],
                                 written.associated_data() if written else None)
        except InvalidTag:
            raise UndecryptablePayload(
                f"a payload encrypted with key id {kid!r} fails authentication: it "
                "was altered or truncated after it was encrypted", kid) from None
        if written is not None and self._in_context and not self._belongs(written):
            where = self._binding.describe() if self._binding else "no workflow"
            raise MisboundPayload(
                f"a payload encrypted for {written.describe()} was handed to {where}: it "
                "was copied from another run and was not acted on")
        return Payload.FromString(plain)

    def _belongs(self, written: Binding) -> bool:
        """Whether a payload bound to `written` is this context's own."""
        expected = self._binding
        return expected is not None and written.workflow_id == expected.workflow_id and (
            written.namespace == expected.namespace or not self._check_namespace)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.encode_payloads(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.decode_payloads(payloads)

    def holds(self, kid: str) -> bool:
        return kid in self._keys

    def _describe_keys(self) -> str:
        if not self._keys:
            return "no keys"
        return ", ".join(f"{kid} ({where})" for kid, where in self._origin.items())


class EncryptedFailureConverter(DefaultFailureConverter):
    """Failure messages and stack traces moved into a payload the codec encrypts.

    They are plain strings in a history otherwise, and Baton's quote model output
    (contract violations, guardrail reasons, validation errors). The exceptions are a
    failure to decrypt and a refused payload: their messages name keys, workflow ids
    and variables, never data, and must stay readable by whoever lacks the key they are
    about (a starter, the sender of a plain Update, the Web UI without a codec server).
    """

    _plain = DefaultFailureConverter()

    def __init__(self) -> None:
        super().__init__(encode_common_attributes=True)

    def to_failure(self, exception: BaseException, payload_converter: PayloadConverter,
                   failure: Failure) -> None:
        # A refusal is told in plain text too: its sender may hold no key, and it names
        # workflow ids and variables only, never a payload's content.
        if isinstance(exception, Refusal):
            self._plain.to_failure(exception, payload_converter, failure)
        else:
            super().to_failure(exception, payload_converter, failure)


def client_key_problem(err: BaseException, codec: PayloadCodec | None = None) -> str | None:
    """One line for a client that cannot read a run, or whose payloads the workers
    refused, for want of the key: it names BATON_ENCRYPTION_KEY. None when `err` (or
    an exception it was raised from) is about something else. `codec` is the client's,
    to recognise its own key in a worker's refusal."""
    for cause in _causes(err):
        if (problem := _key_problem(cause, codec)) is not None:
            return problem
    return None


def _causes(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [err]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def _key_problem(err: BaseException, codec: PayloadCodec | None) -> str | None:
    fix = f"set {KEY_ENV} (and {OLD_KEYS_ENV} for older keys) as the workers have it"
    if isinstance(err, UndecryptablePayload):  # raised here: a remote one is an ApplicationError
        return (f"cannot decrypt what Temporal returned: it is encrypted with key id "
                f"{err.key_id!r}, which this client does not hold; {fix}")
    if isinstance(err, KeyError) and ENCODING.decode() in str(err):
        return (f"cannot read what Temporal returned: it is encrypted and {KEY_ENV} is "
                f"not set; {fix}")
    # A worker's refusal: a failure with its type, or a failed query's bare message.
    if isinstance(err, ApplicationError):
        kind, message = err.type, err.message
        if message == "Encoded failure":  # what the SDK leaves of a failure it cannot decrypt
            return (f"cannot read the run's failure: it is encrypted and {KEY_ENV} is not "
                    f"set; {fix}")
    elif isinstance(err, WorkflowQueryFailedError):
        kind, message = None, err.message
    else:
        return None
    if kind == PlaintextRefused.TYPE or message.startswith(PLAINTEXT_REFUSAL):
        return (f"the workers require encrypted payloads and refused this client's plain "
                f"ones ({KEY_ENV} is not set here); {fix}")
    own = _own_key_id(codec)
    if kind in (UndecryptablePayload.TYPE, None) and own and f"key id {own!r}" in message:
        return (f"the workers do not hold this client's key (key id {own!r}, from "
                f"{KEY_ENV}) and could not read what it sent; {fix}")
    return None


def _own_key_id(codec: PayloadCodec | None) -> str | None:
    """The id of the key this client encrypts with: its codec's, else the environment's."""
    if isinstance(codec, EncryptionCodec):
        return codec.key_id
    try:
        current, _ = keys_from_env()
    except EncryptionKeyError:
        return None
    return key_id(current) if current is not None else None


def payloads_in(message: Message, *, skip: tuple[type[Message], ...] = ()) -> Iterator[Payload]:
    """Every Payload anywhere inside a protobuf message (a history event, a request),
    except inside messages of the `skip` types."""
    if isinstance(message, skip):
        return
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            items = value.values()  # memo and header fields: map<string, Payload>
        elif field.is_repeated:
            items = value
        else:
            items = [value]
        for item in items:
            if isinstance(item, Message):
                yield from payloads_in(item, skip=skip)


def missing_key_ids(messages: Iterable[Message], codec: PayloadCodec | None) -> set[str]:
    """Ids of the keys that encrypted payloads in `messages` but that `codec` (a data
    converter's payload codec, None when encryption is off) does not hold."""
    missing = set()
    for message in messages:
        for payload in payloads_in(message):
            if payload.metadata.get("encoding") != ENCODING:
                continue
            kid = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
            if not (isinstance(codec, EncryptionCodec) and codec.holds(kid)):
                missing.add(kid or "(none)")
    return missing
