"""Signed decisions: only the approvers the worker's operator names may decide.

Whoever can reach Temporal can send a run's `decide` Update, and the identity
Temporal records with it is whatever that client chose to call itself. So a worker
whose environment sets `BATON_APPROVER_KEYS` (`alice:<public key>,bob:<public key>`)
accepts a decision only when it carries an Ed25519 signature by one of those keys.
Approvers hold their private key in `BATON_APPROVER_KEY` (`alice:<private key>`);
`starter.py approve|reject` and `baton.approve|reject` sign whenever it is set, and
`starter.py approver-key NAME` makes a pair. Ed25519 rather than a shared HMAC
secret: the worker holds only public keys, so nothing on it can forge a decision.

The signature covers the workflow id and run id, the request id, the verdict, the
note or reason, who is named as deciding, the client identity, the signer and the
time of signing, so it cannot be moved to another run or request, or altered, and a
request is decided once (the desk refuses a second decision), so it cannot be replayed.

Where the check runs, and why that is deterministic: in a workflow inbound
interceptor's `handle_update_validator`. The keys are the worker's configuration and
workflow code may not read the environment; but an Update validator runs only when
the Update is first delivered (the SDK skips it on replay: `DoUpdate.run_validator`
is false then), and a rejected Update leaves no event in history. So what the
validator decides may depend on the worker's keys without history ever depending on
them; the handler that writes the record reads only the decision itself. Each worker
builds its own interceptor from its own keys (no process-wide state), so two workers
in one process may be configured differently. Every worker on a task queue must hold
the same keys: the Update goes to whichever worker has the run.

A decision sent while no worker runs the run comes as a signal (baton/core/waiting.py),
which is in history whatever its check says. So the run asks the check-approver
local activity (`approver_activities`, built from the same keys): its answer is
recorded in history as a marker, and a replay reads it from there, never from the
keys of the worker that replays. Such a decision may be read long after it was
signed (the worker was down), so its signature time is checked against the
request's own time instead of the last 10 minutes: it cannot predate the request.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from temporalio import activity, workflow
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from baton.core.runs import Decision, DecisionSignature
from baton.core.waiting import CHECK_APPROVER_ACTIVITY, ApproverCheck

KEYS_ENV = "BATON_APPROVER_KEYS"
KEY_ENV = "BATON_APPROVER_KEY"
SIGNER_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# How old a signature may be when the run receives it, and how far ahead of the
# run's clock: long enough for a slow network and a skewed laptop clock, short
# enough that a signed decision held back by someone in the middle goes stale.
MAX_AGE = timedelta(minutes=10)
MAX_AHEAD = timedelta(minutes=2)
# Domain separation: these bytes are never a valid signature of anything else.
PURPOSE = "baton decide v1"
# The Decision fields the signature covers (all but the signature itself); a test
# keeps this list equal to the model's fields, so no field is left unsigned.
SIGNED_FIELDS = ("request_id", "approve", "note", "reason", "by", "identity")


class ApproverKeyError(ValueError):
    """A key variable that holds no usable key; the message says which and why."""


def signed_bytes(decision: Decision, *, workflow_id: str, run_id: str, signer: str,
                 signed_at: datetime) -> bytes:
    """The exact bytes signed: canonical JSON of everything the decision says and where."""
    content: dict[str, Any] = {name: getattr(decision, name) for name in SIGNED_FIELDS}
    content.update(purpose=PURPOSE, workflow_id=workflow_id, run_id=run_id, signer=signer,
                   signed_at=signed_at.astimezone(UTC).isoformat())
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()


def _decode_key(raw: str, what: str) -> bytes:
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ApproverKeyError(f"{what} is not base64") from None
    if len(key) != 32:
        raise ApproverKeyError(f"{what} is {len(key)} bytes; an Ed25519 key is 32 bytes "
                               "(make a pair with `starter.py approver-key NAME`)")
    return key


def _split_entry(entry: str, variable: str) -> tuple[str, str]:
    signer, sep, key = entry.strip().partition(":")
    if not sep or not SIGNER_PATTERN.match(signer):
        raise ApproverKeyError(
            f"{variable}: {entry.strip()[:20]!r}… is not NAME:BASE64KEY (NAME: letters, "
            "digits, _ . @ -, at most 64)")
    return signer, key


@dataclass(frozen=True)
class SigningKey:
    """An approver's private key and the name the workers know its public key by."""

    signer: str
    private_key: Ed25519PrivateKey

    @classmethod
    def parse(cls, text: str) -> SigningKey:
        signer, raw = _split_entry(text, KEY_ENV)
        key = _decode_key(raw, f"{KEY_ENV} ({signer})")
        return cls(signer, Ed25519PrivateKey.from_private_bytes(key))

    @classmethod
    def from_env(cls) -> SigningKey | None:
        text = os.environ.get(KEY_ENV, "")
        return cls.parse(text) if text.strip() else None

    @classmethod
    def generate(cls, signer: str) -> SigningKey:
        if not SIGNER_PATTERN.match(signer):
            raise ApproverKeyError(f"approver name {signer!r}: use letters, digits, _ . @ - "
                                   "(at most 64)")
        return cls(signer, Ed25519PrivateKey.generate())

    def private_entry(self) -> str:
        """`name:key` as BATON_APPROVER_KEY takes it."""
        raw = self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return f"{self.signer}:{base64.b64encode(raw).decode()}"

    def public_entry(self) -> str:
        """`name:key` as one item of BATON_APPROVER_KEYS."""
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return f"{self.signer}:{base64.b64encode(raw).decode()}"

    def sign(self, decision: Decision, *, workflow_id: str, run_id: str,
             now: datetime | None = None) -> Decision:
        """`decision` with this key's signature for exactly this run."""
        if decision.request_id is None:
            raise ValueError("a signed decision names its request (sign one per request)")
        signed_at = now or datetime.now(UTC)
        message = signed_bytes(decision, workflow_id=workflow_id, run_id=run_id,
                               signer=self.signer, signed_at=signed_at)
        value = base64.b64encode(self.private_key.sign(message)).decode()
        signature = DecisionSignature(signer=self.signer, signed_at=signed_at, value=value)
        return decision.model_copy(update={"signature": signature})


@dataclass(frozen=True)
class ApproverKeys:
    """The public keys a worker accepts decisions from, by approver name."""

    keys: Mapping[str, Ed25519PublicKey]

    @classmethod
    def parse(cls, text: str) -> ApproverKeys:
        keys: dict[str, Ed25519PublicKey] = {}
        for entry in filter(str.strip, text.split(",")):
            signer, raw = _split_entry(entry, KEYS_ENV)
            if signer in keys:
                raise ApproverKeyError(f"{KEYS_ENV}: {signer!r} is listed twice")
            key = _decode_key(raw, f"{KEYS_ENV} ({signer})")
            keys[signer] = Ed25519PublicKey.from_public_bytes(key)
        return cls(keys)

    @classmethod
    def from_env(cls) -> ApproverKeys:
        """The worker's keys; none when the variable is unset or empty."""
        return cls.parse(os.environ.get(KEYS_ENV, ""))

    def check(self, decision: Decision, *, workflow_id: str, run_id: str,
              now: datetime) -> None:
        """Raise ValueError (the Update's rejection, shown to the client) unless the
        decision may be accepted by this worker."""
        self._check(decision, workflow_id=workflow_id, run_id=run_id, now=now, earliest=None)

    def check_recorded(self, decision: Decision, *, workflow_id: str, run_id: str,
                       now: datetime, asked_at: datetime) -> None:
        """As `check`, for a decision that waited for a worker (the signal): its
        signature may be older than `MAX_AGE`, never older than its request (`asked_at`)."""
        self._check(decision, workflow_id=workflow_id, run_id=run_id, now=now,
                    earliest=asked_at)

    def _check(self, decision: Decision, *, workflow_id: str, run_id: str, now: datetime,
               earliest: datetime | None) -> None:
        signature = decision.signature
        if not self.keys:
            if signature is not None:
                # Recording a name nobody checked would look like proof.
                raise ValueError(f"the decision is signed by {signature.signer!r} but this "
                                 f"worker checks no signatures ({KEYS_ENV} is not set on it); "
                                 f"give the worker the approver's public key, or decide "
                                 f"without {KEY_ENV}")
            return
        if signature is None:
            raise ValueError(f"this worker accepts only signed decisions ({KEYS_ENV} is "
                             f"set; approvers: {', '.join(sorted(self.keys))}): set "
                             f"{KEY_ENV}=NAME:PRIVATEKEY where you decide")
        self._check_signature(decision, signature, workflow_id=workflow_id, run_id=run_id,
                              now=now, earliest=earliest)

    def _check_signature(self, decision: Decision, signature: DecisionSignature, *,
                         workflow_id: str, run_id: str, now: datetime,
                         earliest: datetime | None) -> None:
        key = self.keys.get(signature.signer)
        if key is None:
            raise ValueError(f"the decision is signed by {signature.signer!r}, who is not an "
                             f"approver on this worker ({', '.join(sorted(self.keys))})")
        if decision.request_id is None:
            raise ValueError("a signed decision must name its request (request_id)")
        # A decision that waited for a worker: from its request's time, less the skew
        # a laptop clock may have.
        oldest = now - MAX_AGE if earliest is None else earliest - MAX_AHEAD
        if not oldest <= signature.signed_at <= now + MAX_AHEAD:
            accepted = (f"accepts signatures up to {MAX_AGE} old" if earliest is None else
                        f"accepts signatures made from {oldest.isoformat()} on (the "
                        "request's time)")
            raise ValueError(f"the signature was made at {signature.signed_at.isoformat()}; "
                             f"the run's clock says {now.isoformat()} and {accepted}: sign "
                             "again (and check the clock of the machine that signs)")
        message = signed_bytes(decision, workflow_id=workflow_id, run_id=run_id,
                               signer=signature.signer, signed_at=signature.signed_at)
        try:
            key.verify(base64.b64decode(signature.value, validate=True), message)
        except (InvalidSignature, binascii.Error, ValueError):
            raise ValueError(f"the signature by {signature.signer!r} does not match this "
                             f"decision for run {workflow_id} ({run_id}); it was made for "
                             "another run, request or content, or with another key") from None


def approver_activities(keys: ApproverKeys) -> list[Callable[..., Any]]:
    """The check-approver local activity of a worker holding `keys`: what the run is
    told about a decision that came as a signal ("" when it may be applied)."""

    @activity.defn(name=CHECK_APPROVER_ACTIVITY)
    async def check_approver(check: ApproverCheck) -> str:
        try:
            keys.check_recorded(check.decision, workflow_id=check.workflow_id,
                                run_id=check.run_id, now=check.now, asked_at=check.asked_at)
        except ValueError as refused:
            return str(refused)
        return ""

    return [check_approver]


def approver_interceptor(keys: ApproverKeys) -> Interceptor:
    """A worker interceptor that checks every `decide` Update against `keys`."""

    class CheckApprover(WorkflowInboundInterceptor):
        def handle_update_validator(self, input: HandleUpdateInput) -> None:
            decision = input.args[0] if input.update == "decide" and input.args else None
            if isinstance(decision, Decision):
                info = workflow.info()
                keys.check(decision, workflow_id=info.workflow_id, run_id=info.run_id,
                           now=workflow.now())
            super().handle_update_validator(input)

    class ApproverKeysInterceptor(Interceptor):
        def workflow_interceptor_class(
                self, input: WorkflowInterceptorClassInput,
        ) -> type[WorkflowInboundInterceptor]:
            return CheckApprover

    return ApproverKeysInterceptor()
