"""Payload encryption: what Temporal stores of a run is unreadable without Baton's key.

With `BATON_ENCRYPTION_KEY` set (32 random bytes in base64), the data converter
(`baton.temporal.data_converter`) carries an `EncryptionCodec`: every payload a
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

Not covered, by Temporal's design: search attributes (the server indexes them),
workflow and run ids, workflow, activity, signal and update names, task queues,
timestamps, retry counts, and the patch ids the SDK's core records in markers.
Baton puts no prompt text into any of these (while encrypting, run ids are named
after the team, not the prompt: baton/launch.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DefaultFailureConverter, PayloadCodec, PayloadConverter

from baton.errors import UndecryptablePayload

KEY_ENV = "BATON_ENCRYPTION_KEY"
OLD_KEYS_ENV = "BATON_DECRYPTION_KEYS"
ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
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


class EncryptionCodec(PayloadCodec):
    """AES-GCM over each whole serialized payload, metadata included, so the original
    encoding (json/plain, binary/null, ...) is hidden too and restored exactly.

    Encryption is CPU work of microseconds per payload and needs no I/O, so the work
    is done synchronously (`encode_payloads`/`decode_payloads`); the codec server
    calls those directly from its threads.
    """

    def __init__(self, key: bytes | None, old_keys: Sequence[bytes] = ()) -> None:
        super().__init__()
        self._current = (key_id(key), AESGCM(key)) if key is not None else None
        self._keys = {key_id(k): AESGCM(k) for k in old_keys}
        if self._current is not None:
            self._keys[self._current[0]] = self._current[1]
        self._origin = {key_id(k): OLD_KEYS_ENV for k in old_keys}
        if key is not None:
            self._origin[key_id(key)] = KEY_ENV

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
        encoded = []
        for payload in payloads:
            # A random 96-bit nonce per payload: under one key, collisions stay
            # negligible far beyond any history's payload count (NIST's 2^32 bound).
            nonce = os.urandom(NONCE_BYTES)
            sealed = aead.encrypt(nonce, payload.SerializeToString(), None)
            encoded.append(Payload(metadata={"encoding": ENCODING,
                                             KEY_ID_METADATA: kid.encode()},
                                   data=nonce + sealed))
        return encoded

    def decode_payloads(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)
                continue
            kid = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
            aead = self._keys.get(kid)
            if aead is None:
                raise UndecryptablePayload(
                    f"a payload is encrypted with key id {kid or '(none)'!r}, which the "
                    f"process decoding it does not hold (it holds {self._describe_keys()}); "
                    f"set that key in {OLD_KEYS_ENV} (or {KEY_ENV}) for every worker and "
                    "client, then `starter.py reset <workflow-id>` resumes a run that "
                    "failed on it", kid)
            data = payload.data
            try:
                plain = aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None)
            except InvalidTag:
                raise UndecryptablePayload(
                    f"a payload encrypted with key id {kid!r} fails authentication: it "
                    "was altered or truncated after it was encrypted", kid) from None
            decoded.append(Payload.FromString(plain))
        return decoded

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
    (contract violations, guardrail reasons, validation errors). The exception is a
    failure to decrypt: its message names keys, never data, and must stay readable by
    whoever lacks the key it is about (a starter, the Web UI without a codec server).
    """

    _plain = DefaultFailureConverter()

    def __init__(self) -> None:
        super().__init__(encode_common_attributes=True)

    def to_failure(self, exception: BaseException, payload_converter: PayloadConverter,
                   failure: Failure) -> None:
        if isinstance(exception, UndecryptablePayload):
            self._plain.to_failure(exception, payload_converter, failure)
        else:
            super().to_failure(exception, payload_converter, failure)


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
