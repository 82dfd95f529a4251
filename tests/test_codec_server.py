"""baton/cli/codec_server.py: the Web UI's codec endpoint refuses whoever should not read.

Each test plays one caller the server must turn away (no token, a rebound domain, an
encoder it was not asked to be, a malformed body) and checks the refusal is an answer
with a JSON message, never plaintext, a dropped connection or a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hmac
import http.client
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import WorkflowSerializationContext
from temporalio.testing import WorkflowEnvironment

from baton.cli import codec_server, starter
from baton.cli.codec_server import CodecServer, CodecServerError, make_server
from baton.runtime.codec import (
    ENCODING,
    KEY_ENV,
    KEY_ID_METADATA,
    OLD_KEYS_ENV,
    WORKFLOW_METADATA,
    EncryptionCodec,
    key_id,
)
from baton.runtime.temporal import temporal_binary
from tests.processes import spawn, stop
from tests.test_codec import serving as codec_serving
from tests.test_starter import ROOT

KEY = os.urandom(32)
KEY_TEXT = base64.b64encode(KEY).decode()
TOKEN = "Zr0kH2vQmT8xWc5pLs9yNa4bEe7uJd1g"
UI = "http://localhost:8233"
SECRET = "Quokka7731 owes 40 EUR"
TOKEN_ENV = codec_server.TOKEN_ENV


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def plain(text: str = SECRET) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


def sealed(text: str = SECRET) -> Payload:
    [payload] = EncryptionCodec(KEY).encode_payloads([plain(text)])
    return payload


def payloads_json(*payloads: Payload) -> bytes:
    return json.dumps(json_format.MessageToDict(Payloads(payloads=payloads))).encode()


def exchange(server: CodecServer, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None, *, host: str | None = None) -> Answer:
    """One HTTP exchange with `server`, any status; `host` replaces the Host header
    ("" sends none)."""
    port = server.server_address[1]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=host is not None)
        if host:
            connection.putheader("Host", host)
        for name, value in {"Content-Length": str(len(body or b"")), **(headers or {})}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def decode(server: CodecServer, body: bytes, token: str | None = TOKEN, **kw: Any) -> Answer:
    headers = {"Content-Type": "application/json", "X-Namespace": "default", "Origin": UI}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return exchange(server, "POST", "/decode", body, headers, **kw)


@contextmanager
def serving(**options: Any) -> Iterator[CodecServer]:
    """tests/test_codec.py's server, with the token on unless a test says otherwise."""
    options.setdefault("token", TOKEN)
    with codec_serving(EncryptionCodec(KEY), **options) as server:
        yield server


def decoded_texts(answer: Answer) -> list[str]:
    assert answer.status == 200, answer.body
    return [json.loads(p.data) for p in json_format.Parse(answer.body, Payloads()).payloads]


def test_without_the_token_nothing_is_decrypted(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    body = payloads_json(sealed())
    with serving() as server:
        refusals = {
            "no header": decode(server, body, token=None),
            "wrong token": decode(server, body, token=TOKEN[:-1] + "x"),
            "a prefix": decode(server, body, token=TOKEN[:16]),
            "no scheme": exchange(server, "POST", "/decode", body, {"Authorization": TOKEN}),
            "basic": exchange(server, "POST", "/decode", body,
                              {"Authorization": "Basic " + base64.b64encode(
                                  f"x:{TOKEN}".encode()).decode()}),
            "GET": exchange(server, "GET", "/decode"),
            "encode": exchange(server, "POST", "/encode", payloads_json(plain())),
        }
        for case, answer in refusals.items():
            assert answer.status == 401, case
            assert SECRET.encode() not in answer.body, case
            assert "Bearer" in answer.json["message"] or answer.json["message"] == (
                "wrong bearer token"), case
            assert answer.headers["WWW-Authenticate"].startswith("Bearer"), case
        assert TOKEN_ENV in refusals["no header"].json["message"]
        # Two Authorization headers are not read as "either will do".
        connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1],
                                                timeout=10)
        connection.putrequest("POST", "/decode")
        for value in (f"Bearer {TOKEN}", "Bearer guess"):
            connection.putheader("Authorization", value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        assert connection.getresponse().status == 401
        connection.close()
        # The browser's preflight carries no credentials and gets its CORS answer.
        preflight = exchange(server, "OPTIONS", "/decode", None, {
            "Origin": UI, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,authorization-extras,content-type"})
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == UI
        for name in ("authorization", "authorization-extras", "content-type", "x-namespace"):
            assert name in preflight.headers["Access-Control-Allow-Headers"].split(",")
        # The right token, with the scheme in any case, reads; a GET with it is a 405.
        compared.clear()
        assert decoded_texts(decode(server, body)) == [SECRET]
        assert compared == [(TOKEN.encode(), TOKEN.encode())]  # constant-time compare
        answer = exchange(server, "POST", "/decode", body, {"Authorization": f"bearer {TOKEN}"})
        assert decoded_texts(answer) == [SECRET]
        answer = exchange(server, "GET", "/decode", None, {"Authorization": f"Bearer {TOKEN}"})
        assert answer.status == 405 and answer.headers["Allow"] == "POST, OPTIONS"


def test_a_rebound_domain_gets_no_answer() -> None:
    body = payloads_json(sealed())
    with serving(allowed_hosts=["codec.example"]) as server:
        port = server.server_address[1]
        # DNS rebinding: evil.example now resolves to 127.0.0.1, and the browser says so.
        for host in (f"evil.example:{port}", "evil.example", f"codec.example.evil.example:{port}",
                     f"127.0.0.1.evil.example:{port}", f"localhost@evil.example:{port}"):
            answer = decode(server, body, host=host)
            assert answer.status in (400, 421), host
            assert SECRET.encode() not in answer.body, host
            assert "message" in answer.json, host
            preflight = exchange(server, "OPTIONS", "/decode", None,
                                 {"Origin": "http://evil.example"}, host=host)
            assert preflight.status in (400, 421), host
        assert "--allowed-host" in decode(server, body, host="evil.example").json["message"]
        missing = decode(server, body, host="")  # no Host header at all, HTTP/1.0 style
        assert missing.status == 400 and missing.json["message"].startswith("a Host header")
        # The names this server answers for: loopback, the bound host, --allowed-host.
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST.:{port}",
                     f"[::1]:{port}", f"codec.example:{port}", "codec.example"):
            assert decoded_texts(decode(server, body, host=host)) == [SECRET], host


def test_encode_is_off_unless_allowed() -> None:
    body = payloads_json(plain())
    with serving() as server:
        answer = exchange(server, "POST", "/encode", body, {"Authorization": f"Bearer {TOKEN}"})
        assert answer.status == 403
        assert "--allow-encode" in answer.json["message"]
        assert decoded_texts(decode(server, payloads_json(sealed()))) == [SECRET]
    with serving(allow_encode=True) as server:
        answer = exchange(server, "POST", "/default/encode?preserveStorageRefs=true", body,
                          {"Authorization": f"Bearer {TOKEN}"})
        assert answer.status == 200, answer.body
        [encrypted] = json_format.Parse(answer.body, Payloads()).payloads
        assert encrypted.metadata["encoding"] == ENCODING
        assert SECRET.encode() not in encrypted.SerializeToString()
        assert decoded_texts(decode(server, payloads_json(encrypted))) == [SECRET]


def _with_data(data: bytes, kid: bytes | None = None) -> bytes:
    kid = key_id(KEY).encode() if kid is None else kid
    return payloads_json(Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: kid},
                                 data=data))


GOOD = sealed()
MALFORMED: dict[str, tuple[bytes, str]] = {
    "not JSON": (b"{not json", "not JSON"),
    "invalid UTF-8": (b'{"payloads": ["\xff\xfe"]}', "not UTF-8"),
    "a list": (b"[]", "an object"),
    "null": (b"null", "an object"),
    "payloads not a list": (b'{"payloads": 5}', "is a list"),
    "a payload not an object": (b'{"payloads": ["x"]}', "payload 0 is not an object"),
    "metadata not an object": (b'{"payloads": [{"metadata": []}]}', "'metadata'"),
    "data not base64": (b'{"payloads": [{"data": "!!!"}]}', "payload 0: data is not base64"),
    "data not a string": (b'{"payloads": [{"data": 7}]}', "data is not base64"),
    "metadata not base64": (b'{"payloads": [{"metadata": {"encoding": "%%%"}}]}',
                            "metadata 'encoding' is not base64"),
    "an unknown field": (b'{"payloads": [{"bogus": "eA=="}]}', "bogus"),
    "nested too deep": (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    "an empty ciphertext": (_with_data(b""), "not ciphertext"),
    "a short ciphertext": (_with_data(b"abc"), "not ciphertext"),
    "a truncated ciphertext": (_with_data(GOOD.data[:20]), "fails authentication"),
    "an altered ciphertext": (_with_data(GOOD.data[:-1] + bytes([GOOD.data[-1] ^ 1])),
                              "fails authentication"),
    "an unknown key id": (_with_data(GOOD.data, b"0123456789abcdef"), "0123456789abcdef"),
    "no key id": (payloads_json(Payload(metadata={"encoding": ENCODING}, data=GOOD.data)),
                  "(none)"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_body_gets_400_and_a_message(case: str,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    body, says = MALFORMED[case]
    with serving() as server:
        answer = decode(server, body)
        assert answer.status == 400, answer.body
        assert says in answer.json["message"]
        assert answer.headers["Access-Control-Allow-Origin"] == UI  # the UI can show it
        # The server is still there, and no traceback was printed.
        assert decoded_texts(decode(server, payloads_json(sealed()))) == [SECRET]
    err = capfd.readouterr().err
    assert "Traceback" not in err and SECRET not in err


def test_a_body_cut_short_or_chunked_gets_an_answer(capfd: pytest.CaptureFixture[str]) -> None:
    with serving() as server:
        port = server.server_address[1]
        head = (f"POST /decode HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {TOKEN}\r\n")
        for request, status in (
                (head + 'Content-Length: 100\r\n\r\n{"payloads": [', 400),
                (head + "Transfer-Encoding: chunked\r\n\r\n5\r\n{}   \r\n0\r\n\r\n", 411),
                (head + "Content-Length: 999999999999\r\n\r\n", 413),
                (head + "Content-Length: -1\r\n\r\n", 413)):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
                connection.sendall(request.encode())
                connection.shutdown(socket.SHUT_WR)  # the client sends no more
                reply = b"".join(iter(lambda: connection.recv(65536), b""))
            status_line, _, rest = reply.partition(b"\r\n")
            assert status_line.split()[1] == str(status).encode(), (request, reply)
            assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["message"]
    assert "Traceback" not in capfd.readouterr().err


def test_listening_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(CodecServerError, match=r"refusing to listen on 0\.0\.0\.0 without a token"):
        make_server(EncryptionCodec(KEY), "0.0.0.0", 0, [UI])
    # On loopback a token is optional: the browser on this machine is the only caller.
    with serving(token=None) as server:
        assert server.loopback and server.token is None
        assert decoded_texts(decode(server, payloads_json(sealed()), token=None)) == [SECRET]


def test_a_payload_bound_to_its_workflow_is_shown_as_written() -> None:
    """The Web UI names no workflow, so the server decrypts with the binding each
    payload carries (baton/runtime/codec.py); a binding changed since fails authentication."""
    context = WorkflowSerializationContext(namespace="default", workflow_id="triage-a")
    [bound] = EncryptionCodec(KEY).with_context(context).encode_payloads([plain()])
    assert bound.metadata[WORKFLOW_METADATA] == b"triage-a"
    moved = Payload()
    moved.CopyFrom(bound)
    moved.metadata[WORKFLOW_METADATA] = b"triage-b"
    with serving() as server:
        assert decoded_texts(decode(server, payloads_json(bound))) == [SECRET]
        answer = decode(server, payloads_json(moved))
        assert answer.status == 400 and "fails authentication" in answer.json["message"]


def test_an_unexpected_failure_is_still_an_answer(monkeypatch: pytest.MonkeyPatch,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    def broken(self: EncryptionCodec, payloads: Any) -> list[Payload]:
        raise RuntimeError(f"broken while holding {SECRET}")

    monkeypatch.setattr(EncryptionCodec, "decode_payloads", broken)
    with serving() as server:
        answer = decode(server, payloads_json(sealed()))
        assert answer.status == 500
        assert "RuntimeError" in answer.json["message"]
        assert SECRET.encode() not in answer.body
    err = capfd.readouterr().err
    assert "Traceback" not in err and SECRET not in err and "RuntimeError" in err


def starter_says(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str], **env: str) -> str:
    """What `starter.py codec-server ...` prints on stderr when it refuses to start."""
    def listen(self: CodecServer) -> None:
        raise AssertionError(f"listened on {self.server_address} instead of refusing")

    monkeypatch.setattr(CodecServer, "server_activate", listen)
    monkeypatch.setenv(KEY_ENV, KEY_TEXT)
    monkeypatch.delenv(OLD_KEYS_ENV, raising=False)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert starter.main(["codec-server", "--port", "0", *argv]) == 2, argv
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    return err


def test_unsafe_or_unusable_settings_are_refused_in_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    _, other_key = self_signed(tmp_path / "other")

    def say(*argv: str, **env: str) -> str:
        return starter_says(list(argv), monkeypatch, capsys, **env)

    assert "refusing to listen on 0.0.0.0 without a token" in say("--host", "0.0.0.0")
    assert TOKEN_ENV in say("--host", "0.0.0.0")
    # A token too short to be random, or one a header cannot carry; never echoed.
    for argv, env, where in ((["--token", "hunter2"], {}, "--token"),
                             (["--token", ""], {}, "--token"),
                             ([], {TOKEN_ENV: "hunter2"}, TOKEN_ENV),
                             ([], {TOKEN_ENV: "a token with spaces in it"}, TOKEN_ENV)):
        err = say(*argv, **env)
        assert f"{where} takes a random token of at least 16 characters" in err, err
        assert "hunter2" not in err and "spaces" not in err
    assert "--tls-cert and --tls-key go together" in say("--tls-cert", str(cert))
    assert "--tls-cert and --tls-key go together" in say("--tls-key", str(key))
    assert "cannot read" in say("--tls-cert", str(tmp_path / "none.pem"), "--tls-key", str(key))
    assert "cannot use" in say("--tls-cert", str(cert), "--tls-key", str(other_key))
    assert "cannot use" in say("--tls-cert", str(key), "--tls-key", str(key))
    parser = starter.build_parser()
    for bad in ("http://codec.example", "codec.example:8081", "codec.example/x", "a b"):
        with pytest.raises(SystemExit):
            parser.parse_args(["codec-server", "--allowed-host", bad])
    args = parser.parse_args(["codec-server", "--allowed-host", "Codec.Example.",
                              "--allowed-host", "[::1]"])
    assert args.allowed_host == ["codec.example", "::1"]
    assert not args.allow_encode and args.token is None


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost and its key, as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Running:
    url: str
    banner: str
    returncode: int | None = None
    stderr: bytes = field(default=b"")


@asynccontextmanager
async def codec_server_process(*argv: str, env: dict[str, str]) -> AsyncIterator[Running]:
    """`starter.py codec-server` in a child process, stopped with Ctrl-C on exit (it gets
    the default SIGINT even when this test run ignores it, as a background job does); a
    child that ignores it is terminated, then killed: it never outlives the test."""
    process = await spawn(
        sys.executable, "starter.py", "codec-server", "--port", "0", *argv, cwd=ROOT,
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        banner = "".join([(await asyncio.wait_for(process.stdout.readline(), 30)).decode()
                          for _ in range(3)])  # where, what to enter in the UI, settings
        found = re.search(r"https?://127\.0\.0\.1:\d+", banner)
        assert found, banner
        running = Running(found.group(), banner)
        yield running
    finally:
        _, stderr = await stop(process, signal.SIGINT)
    running.returncode = process.returncode
    running.stderr = stderr


def https_decode(url: str, body: bytes, token: str | None, cafile: Path) -> Answer:
    host, port = url.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(cafile))
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request("POST", "/decode", body=body, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def plain_http_post(url: str, body: bytes) -> bytes:
    """What a client speaking plain HTTP to `url` gets back (it never gets payloads)."""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"POST /decode HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
                           b"Bearer " + TOKEN.encode() + b"\r\nContent-Length: "
                           + str(len(body)).encode() + b"\r\n\r\n" + body)
        try:
            return b"".join(iter(lambda: connection.recv(65536), b""))
        except ConnectionResetError:
            return b""


async def test_the_command_serves_https_with_the_token_from_the_environment(
        tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    body = payloads_json(sealed())
    async with codec_server_process(
            "--tls-cert", str(cert), "--tls-key", str(key),
            env={KEY_ENV: KEY_TEXT, TOKEN_ENV: TOKEN}) as running:
        assert running.url.startswith("https://")
        assert "bearer token: required" in running.banner
        refused = await asyncio.to_thread(https_decode, running.url, body, None, cert)
        assert refused.status == 401 and SECRET.encode() not in refused.body
        answer = await asyncio.to_thread(https_decode, running.url, body, TOKEN, cert)
        assert decoded_texts(answer) == [SECRET]
        assert SECRET.encode() not in await asyncio.to_thread(plain_http_post, running.url, body)
        # ... and the server still answers after that garbage.
        answer = await asyncio.to_thread(https_decode, running.url, body, TOKEN, cert)
        assert decoded_texts(answer) == [SECRET]
    assert running.returncode == 130
    assert TOKEN.encode() not in running.stderr


async def test_codec_server_command_serves_until_interrupted() -> None:
    env = {KEY_ENV: KEY_TEXT, TOKEN_ENV: ""}
    async with codec_server_process(env=env) as running:
        assert running.url.startswith("http://127.0.0.1:")
        host, port = running.url.removeprefix("http://").rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("POST", "/decode", body=payloads_json(sealed("hi")),
                           headers={"Content-Type": "application/json",
                                    "X-Namespace": "default", "Origin": UI})
        response = connection.getresponse()
        assert response.status == 200
        assert json_format.Parse(response.read(), Payloads()).payloads[0].data == b'"hi"'
        connection.close()
    assert running.returncode == 130


async def test_the_temporal_cli_reaches_it_with_codec_auth(
        env: WorkflowEnvironment, capfd: pytest.CaptureFixture[str]) -> None:
    """A real client of the codec protocol: the Temporal CLI, sending the static bearer
    an operator gives it with --codec-auth, encodes a start input and decodes history."""
    workflow_id = f"codec-cli-{uuid.uuid4().hex[:8]}"
    with serving(allow_encode=True) as server:
        cli = [temporal_binary(), "--address", env.client.service_client.config.target_host,
               "--namespace", env.client.namespace, "--codec-endpoint", server.url]
        auth = ["--codec-auth", f"Bearer {TOKEN}"]

        def temporal(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*cli, *argv], capture_output=True, text=True, timeout=60)

        started = await asyncio.to_thread(
            temporal, *auth, "workflow", "start", "--type", "NoWorkerRunsThis",
            "--task-queue", f"nobody-{workflow_id}", "--workflow-id", workflow_id,
            "--input", json.dumps(SECRET))
        assert started.returncode == 0, started.stderr
        handle = env.client.get_workflow_handle(workflow_id)
        try:
            history = await handle.fetch_history()
            [stored] = history.events[0].workflow_execution_started_event_attributes.input.payloads
            assert stored.metadata["encoding"] == ENCODING  # the CLI's /encode did it
            assert SECRET.encode() not in stored.SerializeToString()
            shown = await asyncio.to_thread(temporal, *auth, "workflow", "show", "-w",
                                            workflow_id, "--detailed")
            assert shown.returncode == 0 and SECRET in shown.stdout, shown.stderr
            refused = await asyncio.to_thread(temporal, "workflow", "show", "-w", workflow_id,
                                              "--detailed")
            # Without --codec-auth: refused (the CLI retries the 401 until it gives up).
            assert refused.returncode != 0 and SECRET not in refused.stdout
            assert '"POST /decode HTTP/1.1" 401' in capfd.readouterr().err
        finally:
            await handle.terminate("codec server test done")
