"""Large payloads kept outside a run's history, through Temporal's `ExternalStorage`.

Temporal refuses a payload over 2 MB and terminates a history at 50 MB, so a
large document, tool result or conversation cannot travel inline. Every payload at
or above `BATON_PAYLOAD_OFFLOAD_BYTES` (default 512 KiB) is written to a payload
store and the history keeps a small reference (the store's name and the object's
SHA-256). The data converter applies the payload codec first, so with
`BATON_ENCRYPTION_KEY` set the store holds ciphertext, bound to its workflow like
any encrypted payload (baton/runtime/codec.py).

Stores, chosen by the worker operator's environment (never by a run's input):
- the embedded default, `FileStore`: content-addressed files under
  `BATON_PAYLOAD_DIR` (default `.temporal/payloads`, beside `make server`'s
  database). Every process that reads a run (client, worker, replayer) must see
  the same directory, so it suits one machine.
- `BATON_PAYLOAD_STORE=s3://bucket/prefix`: Temporal's S3 driver through boto3
  (`BATON_PAYLOAD_S3_ENDPOINT` for an S3-compatible server; credentials and region
  from boto3's usual environment). The bucket must exist.

A reference in a history is read back by whoever decodes it, so a claim is trusted
for nothing but its digest: a file is found from the digest alone, an S3 object
only in the configured bucket and prefix, and every object's bytes are checked
against the digest. Failures are typed, non-retryable `BatonError`s naming the
object and the store, so a run whose stored payload is gone fails visibly instead
of retrying its workflow task forever (docs/payloads.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from temporalio.api.common.v1 import Payload
from temporalio.contrib.aws.s3driver import S3StorageDriver, S3StorageDriverClient
from temporalio.converter import (
    ExternalStorage,
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
)

# Re-exported: the failures belong to core so activities can raise them too.
from baton.core.errors import (
    PayloadStoreError,  # noqa: F401
    PayloadStoreUnavailable,
    PayloadTooLarge,
    StoredPayloadCorrupt,
    StoredPayloadMissing,
)

OFFLOAD_ENV = "BATON_PAYLOAD_OFFLOAD_BYTES"
DIR_ENV = "BATON_PAYLOAD_DIR"
STORE_ENV = "BATON_PAYLOAD_STORE"
MAX_ENV = "BATON_PAYLOAD_MAX_BYTES"
S3_ENDPOINT_ENV = "BATON_PAYLOAD_S3_ENDPOINT"
# Well under Temporal's 2 MB per payload, so a request that gathers several large
# parts (instructions, history, a tool result) never reaches the limit inline.
DEFAULT_OFFLOAD_BYTES = 512 * 1024
# An object this large is written and read whole by one process: a bound on memory.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_DIR = Path(".temporal") / "payloads"
_DIGEST = re.compile(r"[0-9a-f]{64}")


class PayloadStoreSettingsError(ValueError):
    """A payload-store variable that cannot be used; the message names it."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _claimed_digest(claim: StorageDriverClaim, store: str) -> str:
    digest = claim.claim_data.get("hash_value", "")
    if claim.claim_data.get("hash_algorithm") != "sha256" or not _DIGEST.fullmatch(digest):
        raise StoredPayloadCorrupt(f"a stored-payload reference without a sha256 digest "
                                   f"({dict(claim.claim_data)!r}) in {store}")
    return digest


def _parsed(data: bytes, digest: str, name: str, store: str) -> Payload:
    if _digest(data) != digest:
        raise StoredPayloadCorrupt(f"stored payload {name} in {store} does not match its "
                                   f"sha256 {digest}: refused")
    payload = Payload()
    payload.ParseFromString(data)
    return payload


def _check_size(data: bytes, limit: int, name: str, store: str) -> None:
    if len(data) > limit:
        raise PayloadTooLarge(f"payload {name} is {len(data)} bytes; {store} accepts at "
                              f"most {limit} ({MAX_ENV})")


class FileStore(StorageDriver):
    """Payloads as files named by their SHA-256 under one directory (the embedded default)."""

    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def name(self) -> str:
        return "baton.files"

    def type(self) -> str:
        return "baton.files"

    def describe(self) -> str:
        return f"payload store {str(self.root)!r}"

    def path_of(self, digest: str) -> Path:
        return self.root / "sha256" / digest[:2] / digest

    async def store(self, context: StorageDriverStoreContext,
                    payloads: Sequence[Payload]) -> list[StorageDriverClaim]:
        return [await asyncio.to_thread(self._write, p.SerializeToString()) for p in payloads]

    async def retrieve(self, context: StorageDriverRetrieveContext,
                       claims: Sequence[StorageDriverClaim]) -> list[Payload]:
        return [await asyncio.to_thread(self._read, claim) for claim in claims]

    def _write(self, data: bytes) -> StorageDriverClaim:
        digest = _digest(data)
        _check_size(data, self.max_bytes, f"sha256:{digest}", self.describe())
        path = self.path_of(digest)
        try:
            if not path.exists():  # same bytes, same file: a retry writes nothing
                path.parent.mkdir(parents=True, exist_ok=True)
                self._write_atomically(path, data)
        except OSError as err:
            raise PayloadStoreUnavailable(f"cannot write stored payload {path.name} to "
                                          f"{self.describe()}: {err.strerror}") from None
        return StorageDriverClaim({"hash_algorithm": "sha256", "hash_value": digest})

    @staticmethod
    def _write_atomically(path: Path, data: bytes) -> None:
        # A reader never sees a half-written object: it is renamed into place whole.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _read(self, claim: StorageDriverClaim) -> Payload:
        digest = _claimed_digest(claim, self.describe())
        path = self.path_of(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoredPayloadMissing(f"stored payload {digest} is missing from "
                                       f"{self.describe()} (deleted, or another "
                                       f"{DIR_ENV})") from None
        except OSError as err:
            raise PayloadStoreUnavailable(f"cannot read stored payload {digest} from "
                                          f"{self.describe()}: {err.strerror}") from None
        return _parsed(data, digest, digest, self.describe())


class Boto3Objects(S3StorageDriverClient):
    """Temporal's S3 client interface over a (thread-safe) boto3 client, keys under a prefix."""

    def __init__(self, client: Any, prefix: str = "") -> None:
        self._client = client
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def key(self, key: str) -> str:
        return self._prefix + key

    async def put_object(self, *, bucket: str, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._client.put_object, Bucket=bucket, Key=self.key(key),
                                Body=data)

    async def object_exists(self, *, bucket: str, key: str) -> bool:
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]

        try:
            await asyncio.to_thread(self._client.head_object, Bucket=bucket, Key=self.key(key))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return False
            raise
        return True

    async def get_object(self, *, bucket: str, key: str) -> bytes:
        response = await asyncio.to_thread(self._client.get_object, Bucket=bucket,
                                           Key=self.key(key))
        body: bytes = await asyncio.to_thread(response["Body"].read)
        return body


class S3Store(S3StorageDriver):
    """Temporal's S3 driver, reading only its own bucket and prefix, with typed failures."""

    def __init__(self, client: Boto3Objects, bucket: str, prefix: str = "", *,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(client, bucket, driver_name="baton.s3", max_payload_size=max_bytes)
        self.objects = client
        self.bucket = bucket
        self.prefix = prefix
        self.max_bytes = max_bytes

    def describe(self) -> str:
        return f"payload store 's3://{self.bucket}/{self.prefix}'"

    async def store(self, context: StorageDriverStoreContext,
                    payloads: Sequence[Payload]) -> list[StorageDriverClaim]:
        for payload in payloads:
            data = payload.SerializeToString()
            _check_size(data, self.max_bytes, f"sha256:{_digest(data)}", self.describe())
        try:
            return await super().store(context, payloads)
        except Exception as err:
            raise PayloadStoreUnavailable(f"cannot store a payload in {self.describe()}: "
                                          f"{_root_cause(err)}") from None

    async def retrieve(self, context: StorageDriverRetrieveContext,
                       claims: Sequence[StorageDriverClaim]) -> list[Payload]:
        return [await self._read(claim) for claim in claims]

    async def _read(self, claim: StorageDriverClaim) -> Payload:
        digest = _claimed_digest(claim, self.describe())
        key = claim.claim_data.get("key", "")
        if claim.claim_data.get("bucket") != self.bucket or not key.endswith(digest):
            raise StoredPayloadCorrupt(f"stored payload {key!r} in bucket "
                                       f"{claim.claim_data.get('bucket')!r} is outside "
                                       f"{self.describe()}: refused")
        try:
            data = await self.objects.get_object(bucket=self.bucket, key=key)
        except Exception as err:
            if _error_code(err) in ("NoSuchKey", "404"):
                raise StoredPayloadMissing(f"stored payload {self.objects.key(key)!r} is "
                                           f"missing from {self.describe()}") from None
            raise PayloadStoreUnavailable(f"cannot read stored payload "
                                          f"{self.objects.key(key)!r} from {self.describe()}: "
                                          f"{_root_cause(err)}") from None
        return _parsed(data, digest, repr(self.objects.key(key)), self.describe())


def _error_code(err: BaseException) -> str:
    response = getattr(err, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _root_cause(err: BaseException) -> str:
    while err.__cause__ is not None:
        err = err.__cause__
    return f"{type(err).__name__}: {err}"


def _int_setting(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise PayloadStoreSettingsError(f"{name}={text!r} is not a number of bytes "
                                        "(a whole number, 0 or more)")
    return int(text)


def s3_store(url: str, environ: Mapping[str, str], max_bytes: int) -> S3Store:
    """The S3 store `BATON_PAYLOAD_STORE=s3://bucket/prefix` names."""
    import boto3  # type: ignore[import-untyped]

    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise PayloadStoreSettingsError(f"{STORE_ENV}={url!r} is not usable; accepted: "
                                        "s3://bucket or s3://bucket/prefix (unset: files "
                                        f"under {DIR_ENV})")
    endpoint = environ.get(S3_ENDPOINT_ENV, "").strip() or None
    client = boto3.client("s3", endpoint_url=endpoint)
    prefix = parsed.path.strip("/")
    return S3Store(Boto3Objects(client, prefix), parsed.netloc, prefix, max_bytes=max_bytes)


def payload_store(environ: Mapping[str, str] | None = None) -> StorageDriver:
    """The store the environment names: S3 with BATON_PAYLOAD_STORE, else files."""
    environ = os.environ if environ is None else environ
    max_bytes = _int_setting(environ, MAX_ENV, DEFAULT_MAX_BYTES)
    if url := environ.get(STORE_ENV, "").strip():
        return s3_store(url, environ, max_bytes)
    root = Path(environ.get(DIR_ENV, "").strip() or DEFAULT_DIR)
    return FileStore(root.absolute(), max_bytes=max_bytes)


def external_storage(environ: Mapping[str, str] | None = None) -> ExternalStorage:
    """Temporal's ExternalStorage for every Baton data converter (see the module docstring).

    Raises PayloadStoreSettingsError (a ValueError) for a variable that is not usable,
    so a client or worker refuses to start rather than fail on its first large payload.
    """
    environ = os.environ if environ is None else environ
    threshold = _int_setting(environ, OFFLOAD_ENV, DEFAULT_OFFLOAD_BYTES)
    return ExternalStorage(drivers=[payload_store(environ)], payload_size_threshold=threshold)
