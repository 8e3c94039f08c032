"""No document number or name from a run appears in the logs.

A real hub process at debug level, with mutual TLS and the audit trail on, answers every channel
(single documents by fields and by MRZ, a manifest with bad travellers, a PAXLST, a broken PAXLST)
while one provider fails and one times out; everything the process printed is then searched for
every number and name it was given. The redaction processor itself is tested on structured events
and on the standard-library records that libraries such as grpc emit.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path

import grpc
import pytest
import structlog

from rmas.client import document_pb
from rmas.logs import configure_logging
from rmas.v1 import check_pb2, check_pb2_grpc
from tests.conftest import Pki
from tests.hubproc import free_port, serve

FIX = Path(__file__).resolve().parent.parent / "fixtures"

NUMBERS = ["LA000002", "LA777001", "LA777002", "ZE184226B", "PA9999999", "LQ00X!"]
NAMES = ["WHITAKER", "PERPETUA", "ERIKSSON", "ANNA", "MARIA", "OBRIEN", "O'BRIEN"]
MRZ = [
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
]

HUB = """
[hub]
listen = "127.0.0.1:{port}"
deadline_ms = 300
log_level = "debug"

[tls]
cert = "certs/hub.pem"
key = "certs/hub.key"
ca = "certs/ca.pem"

[[callers]]
identity = "rmas://officer/*"
role = "officer"

[[callers]]
identity = "rmas://airline/*"
role = "airline"

[audit]
url = "sqlite+aiosqlite:///audit.db"
key_file = "audit.key"

[[providers]]
id = "NZL"
kind = "fake"
issuing_states = ["NZL"]
records = {{ "NZL:LA000002" = "STOLEN" }}

[[providers]]
id = "UTO"
kind = "fake"
issuing_states = ["UTO"]
failure = "error"

[[providers]]
id = "SLTD"
kind = "fake"
scope = "global"
required = false
failure = "hang"
"""


def test_a_hub_run_writes_no_document_number_or_name_to_its_logs(tmp_path: Path, pki: Pki) -> None:
    shutil.copytree(pki.dir, tmp_path / "certs")
    (tmp_path / "audit.key").write_text(os.urandom(32).hex())
    port = free_port()
    (tmp_path / "hub.toml").write_text(HUB.format(port=port))
    proc = serve(tmp_path / "hub.toml", port, stdout=subprocess.PIPE,
                 env={"GRPC_VERBOSITY": "debug"})  # fmt: skip
    try:
        _exercise(f"127.0.0.1:{port}", pki)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    text = out + err
    lines = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    # The run did log (start-up, provider failures at debug level and above).
    events = {e.get("event") for e in lines}
    assert {"hub_started", "provider_failed", "audit_started"} <= events, events
    for secret in NUMBERS + NAMES:
        assert secret not in text, f"{secret!r} appears in the hub's output"
    for line in MRZ:
        assert line[:20] not in text


def _exercise(target: str, pki: Pki) -> None:
    import asyncio

    async def run() -> None:
        async with grpc.aio.secure_channel(target, pki.creds("officer")) as ch:
            stub = check_pb2_grpc.DocumentCheckStub(ch)
            await stub.CheckDocument(check_pb2.CheckDocumentRequest(document=document_pb(
                number="LA000002", state="NZL", surname="WHITAKER", given_names="PERPETUA",
                birth_date="1980-01-01")), timeout=5)  # fmt: skip
            await stub.CheckDocument(check_pb2.CheckDocumentRequest(mrz_lines=MRZ), timeout=5)
            # A bad number: INVALID_ARGUMENT, whose text goes to the caller only.
            with pytest.raises(grpc.aio.AioRpcError, match="number"):
                await stub.CheckDocument(check_pb2.CheckDocumentRequest(
                    document=document_pb(number="LQ00X!", state="NZL")), timeout=5)  # fmt: skip
            req = check_pb2.CheckManifestRequest()
            req.travellers.add(ref="1", document=document_pb(number="LA777001", state="NZL",
                                                             surname="ERIKSSON"))  # fmt: skip
            req.travellers.add(ref="2", document=document_pb(number="LA777002", state="XXX"))
            req.travellers.add(ref="3", mrz_lines=MRZ)
            await stub.CheckManifest(req, timeout=5)
        async with grpc.aio.secure_channel(target, pki.creds("airline")) as ch:
            stub = check_pb2_grpc.DocumentCheckStub(ch)
            for name in ("release_obrien.edi", "four_passengers.edi", "broken_truncated.edi"):
                data = (FIX / "paxlst" / name).read_bytes()
                await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=data), timeout=5)

    asyncio.run(run())


def test_redaction_replaces_sensitive_values_with_a_keyed_hash_on_every_road() -> None:
    stream = io.StringIO()
    configure_logging("debug", stream)
    try:
        structlog.get_logger("t").info("x", number="LA000002", surname="WHITAKER", state="NZL")
        logging.getLogger("grpc._cython").warning("plain record from a library")
        try:
            raise ValueError("boom")
        except ValueError:
            structlog.get_logger("t").exception("failed", given_names="PERPETUA")
    finally:
        configure_logging("info")
    first, second, third = (json.loads(x) for x in stream.getvalue().splitlines())
    assert first["number"].startswith("h:") and first["surname"].startswith("h:")
    assert first["state"] == "NZL"
    # The same value hashes the same way within a run, so lines correlate.
    assert first["number"] != first["surname"]
    assert (second["event"], second["logger"]) == ("plain record from a library", "grpc._cython")
    assert third["given_names"].startswith("h:") and "exception" in third
    assert "WHITAKER" not in stream.getvalue() and "PERPETUA" not in stream.getvalue()
