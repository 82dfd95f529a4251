"""activities/providers/errors.py: which failures Temporal retries, and how long it waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from baton.activities.providers.errors import retry_after, status_error


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after-ms": "1500"}, timedelta(seconds=1.5)),
    ({"Retry-After": "7"}, timedelta(seconds=7)),
    ({"retry-after-ms": "250", "retry-after": "9"}, timedelta(seconds=0.25)),
    ({"retry-after": "soon"}, None),
    ({"retry-after": "-3"}, None),
    ({"retry-after": "100000"}, timedelta(minutes=10)),
    ({}, None),
])
def test_retry_after(headers: dict[str, str], expected: timedelta | None) -> None:
    assert retry_after(headers) == expected


def test_retry_after_as_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    delay = retry_after({"retry-after": format_datetime(when, usegmt=True)})
    assert delay is not None and 25 <= delay.total_seconds() <= 31


@pytest.mark.parametrize(("status", "error_type", "retryable"), [
    (408, "ModelUnavailable", True), (409, "ModelUnavailable", True),
    (429, "ModelRateLimited", True), (500, "ModelUnavailable", True),
    (503, "ModelUnavailable", True), (529, "ModelUnavailable", True),
    (400, "ModelBadRequest", False), (401, "ModelAuthError", False),
    (403, "ModelPermissionDenied", False), (404, "ModelNotFound", False),
    (413, "ModelRequestTooLarge", False), (422, "ModelUnprocessable", False),
    (418, "ModelRequestRejected", False),
])
def test_status_classification(status: int, error_type: str, retryable: bool) -> None:
    error = status_error("P", status, "boom", {"retry-after": "2"})
    assert error.type == error_type
    assert error.non_retryable is not retryable
    assert error.next_retry_delay == (timedelta(seconds=2) if retryable else None)
    assert f"P answered HTTP {status}: boom" == error.message
