"""How provider failures become Temporal failures.

Temporal owns retries (the SDKs' own are off), so every failure must say whether
retrying can help. Timeouts, connection errors, 408, 409, 429 and 5xx can: they are
retryable, and a `Retry-After` / `retry-after-ms` header becomes the next retry's
delay. Every other 4xx cannot, and gets a type naming what went wrong. A refusal or
a content filter is the model's answer, not a fault: retrying would ask again for
the same thing, so it is non-retryable too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import timedelta
from email.utils import parsedate_to_datetime
from types import ModuleType

from temporalio.exceptions import ApplicationError

RETRYABLE_STATUS = {408, 409, 429}
NON_RETRYABLE_TYPES = {
    400: "ModelBadRequest",
    401: "ModelAuthError",
    403: "ModelPermissionDenied",
    404: "ModelNotFound",
    413: "ModelRequestTooLarge",
    422: "ModelUnprocessable",
}
# Longest wait a server may ask for; beyond it the retry policy's own interval applies.
MAX_RETRY_AFTER = timedelta(minutes=10)


def retry_after(headers: Mapping[str, str]) -> timedelta | None:
    """The wait a server asked for, from retry-after-ms or retry-after (seconds or a date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    delay: float | None = None
    if "retry-after-ms" in lowered:
        try:
            delay = float(lowered["retry-after-ms"]) / 1000
        except ValueError:
            delay = None
    if delay is None and "retry-after" in lowered:
        value = lowered["retry-after"]
        try:
            delay = float(value)
        except ValueError:
            try:
                delay = parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                delay = None
    if delay is None or delay < 0:
        return None
    return min(timedelta(seconds=delay), MAX_RETRY_AFTER)


# Providers quote (masked) keys in auth errors; error messages end up in history.
KEY_PATTERN = re.compile(r"\b(?:sk|key)[-_][A-Za-z0-9_*.\-]{4,}", re.IGNORECASE)
# The keys this worker has read: a key of no recognisable shape (a local server's, a
# provider without the sk- prefix) is still hidden when an error quotes it verbatim.
_KEYS_READ: set[str] = set()


def remember_key(key: str) -> None:
    """Redact `key` from every provider error this process reports from now on."""
    if len(key) >= 8:
        _KEYS_READ.add(key)


def redact(message: str) -> str:
    for key in _KEYS_READ:
        message = message.replace(key, "[redacted key]")
    return KEY_PATTERN.sub("[redacted key]", message)


def status_error(provider: str, status: int, message: str,
                 headers: Mapping[str, str]) -> ApplicationError:
    """The ApplicationError for an HTTP error status from `provider`."""
    text = f"{provider} answered HTTP {status}: {redact(message)}"
    if status in RETRYABLE_STATUS or status >= 500:
        kind = "ModelRateLimited" if status == 429 else "ModelUnavailable"
        return ApplicationError(text, type=kind, next_retry_delay=retry_after(headers))
    kind = NON_RETRYABLE_TYPES.get(status, "ModelRequestRejected")
    return ApplicationError(text, type=kind, non_retryable=True)


def from_sdk(provider: str, err: Exception, sdk: ModuleType) -> ApplicationError:
    """The ApplicationError for an exception of the official `openai` or `anthropic` SDK
    (both name their exception classes alike)."""
    if isinstance(err, sdk.APITimeoutError):
        return connection_error(provider, err, timed_out=True)
    if isinstance(err, sdk.APIConnectionError):
        return connection_error(provider, err, timed_out=False)
    if isinstance(err, sdk.APIStatusError):
        return status_error(provider, err.status_code, err.message, dict(err.response.headers))
    return bad_response(provider, redact(str(err)))


def connection_error(provider: str, err: Exception, *, timed_out: bool) -> ApplicationError:
    if timed_out:
        return ApplicationError(f"{provider} did not answer in time: {redact(str(err))}",
                                type="ModelTimeout")
    return ApplicationError(f"cannot reach {provider}: {redact(str(err))}",
                            type="ModelUnavailable")


def bad_response(provider: str, detail: str) -> ApplicationError:
    """A reply that is not the wire format (a proxy's error page, a cut connection)."""
    return ApplicationError(f"{provider} sent a malformed response: {detail}",
                            type="ModelBadResponse")


def refusal(provider: str, detail: str, *, content_filter: bool = False) -> ApplicationError:
    kind = "ModelContentFiltered" if content_filter else "ModelRefusal"
    return ApplicationError(f"{provider} declined: {detail}", type=kind, non_retryable=True)


def missing_key(variable: str, provider: str) -> ApplicationError:
    return ApplicationError(
        f"{variable} is not set in the worker's environment; {provider} needs an API key. "
        "Set it where worker.py runs (keys never travel through Temporal).",
        type="ModelAuthError", non_retryable=True)
