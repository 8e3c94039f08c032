"""A node's answer counts only if it is about what was asked, and breakers judge the node.

Each test runs a real node (or a deliberately lying gRPC server) on a loopback port, a real hub
in front of it, and checks through the hub's CheckDocument what an officer would be told.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from rmas.client import check_document_request
from rmas.providers import ProviderInfo
from rmas.remote.client import RemoteProvider
from rmas.remote.node import ProviderNode
from rmas.resilience import BreakerState
from rmas.testing import FakeProvider, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc, common_pb2, provider_pb2
from rmas.verdict import RecordStatus

NZL = ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"}), contact="NZ desk")


async def check(target: str, number: str, wait_s: float = 5.0) -> check_pb2.CheckResult:
    async with grpc.aio.insecure_channel(target) as ch:
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
            check_document_request(number=number, state="NZL", type_code="P"), timeout=wait_s
        )
    return resp.result


async def status(target: str) -> check_pb2.StatusResponse:
    async with grpc.aio.insecure_channel(target) as ch:
        return await check_pb2_grpc.HubAdminStub(ch).Status(check_pb2.StatusRequest(), timeout=5)


@pytest.fixture
async def aus_node() -> AsyncIterator[ProviderNode]:
    # An Australian store (it knows nothing of NZL passports) at the address configured for NZL.
    node = ProviderNode(FakeProvider.issuer("AUS", ["AUS"]), "127.0.0.1:0")
    await node.start()
    try:
        yield node
    finally:
        await node.stop(0)


async def test_a_node_describing_another_state_is_not_asked(aus_node: ProviderNode) -> None:
    nzl = RemoteProvider(NZL, f"127.0.0.1:{aus_node.port}")
    async with running_hub([nzl]) as hub:
        r = await check(hub.target, "LA000002")
        st = await status(hub.target)
    assert (r.verdict, r.directive) == (check_pb2.VERDICT_INCOMPLETE,
                                        check_pb2.DIRECTIVE_CONTACT_AUTHORITY)  # fmt: skip
    (src,) = r.sources
    assert src.outcome == check_pb2.OUTCOME_UNAVAILABLE
    assert "configured for NZL but the node describes AUS" in src.error
    # The node was never asked about the NZL passport.
    assert aus_node.provider.calls == []  # type: ignore[attr-defined]
    (ps,) = st.providers
    assert ps.describe_problem == "configured for NZL but the node describes AUS"
    assert ps.health == "down"


async def test_an_issuer_node_refuses_documents_of_states_it_does_not_serve(
    aus_node: ProviderNode,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{aus_node.port}") as ch:
        stub = ch.unary_unary(
            "/rmas.v1.DocumentStatusProvider/LookupBatch",
            request_serializer=provider_pb2.LookupBatchRequest.SerializeToString,
            response_deserializer=provider_pb2.LookupBatchResponse.FromString,
        )
        req = provider_pb2.LookupBatchRequest()
        req.items.add(ref="0", document=common_pb2.Document(issuing_state="NZL", number="A1"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub(req, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _liar(echo: Callable[[provider_pb2.LookupItem], tuple[str, str]]) -> grpc.GenericRpcHandler:
    """A node that describes NZL and answers NO_RECORD in order, echoing ``echo(item)``."""

    def describe(_req: Any, _ctx: Any) -> provider_pb2.DescribeResponse:
        return provider_pb2.DescribeResponse(provider_id="NZL", issuing_states=["NZL"])

    def lookup(req: provider_pb2.LookupBatchRequest, _ctx: Any) -> provider_pb2.LookupBatchResponse:
        out = provider_pb2.LookupBatchResponse()
        for item in req.items:
            state, number = echo(item)
            res = out.results.add(ref=item.ref, issuing_state=state, number=number)
            res.record.status = common_pb2.RECORD_STATUS_NO_RECORD
        return out

    return grpc.method_handlers_generic_handler(
        "rmas.v1.DocumentStatusProvider",
        {
            "Describe": grpc.unary_unary_rpc_method_handler(
                describe,
                request_deserializer=provider_pb2.DescribeRequest.FromString,
                response_serializer=provider_pb2.DescribeResponse.SerializeToString,
            ),
            "LookupBatch": grpc.unary_unary_rpc_method_handler(
                lookup,
                request_deserializer=provider_pb2.LookupBatchRequest.FromString,
                response_serializer=provider_pb2.LookupBatchResponse.SerializeToString,
            ),
        },
    )


@pytest.mark.parametrize(
    "echo",
    [
        pytest.param(lambda i: (i.document.issuing_state, "LA000001"), id="another-number"),
        pytest.param(lambda i: ("AUS", i.document.number), id="another-state"),
        pytest.param(lambda i: ("", ""), id="no-echo"),
    ],
)
async def test_a_result_about_another_document_is_an_error_never_a_clear(
    echo: Callable[[provider_pb2.LookupItem], tuple[str, str]],
) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_liar(echo),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with running_hub([RemoteProvider(NZL, f"127.0.0.1:{port}")]) as hub:
            r = await check(hub.target, "LA000002")
    finally:
        await server.stop(0)
    assert r.verdict == check_pb2.VERDICT_INCOMPLETE
    (src,) = r.sources
    assert src.outcome == check_pb2.OUTCOME_ERROR
    assert "another document" in src.error


async def test_a_node_echoing_its_keys_is_believed() -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (_liar(lambda i: (i.document.issuing_state, i.document.number)),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with running_hub([RemoteProvider(NZL, f"127.0.0.1:{port}")]) as hub:
            r = await check(hub.target, "la 000-002")
    finally:
        await server.stop(0)
    assert r.verdict == check_pb2.VERDICT_CLEAR


async def test_callers_short_deadlines_do_not_open_a_healthy_nodes_breaker() -> None:
    # A healthy node that takes 60 ms; callers that give the hub 30 ms give up first. That is the
    # callers' choice, not the node's failure: the breaker stays closed for everyone else.
    fake = FakeProvider.issuer("NZL", ["NZL"], {("NZL", "LA000002"): RecordStatus.STOLEN},
                               latency_s=0.06)  # fmt: skip
    node = ProviderNode(fake, "127.0.0.1:0")
    await node.start()
    client = RemoteProvider(NZL, f"127.0.0.1:{node.port}", breaker_failures=2, retries=0)
    try:
        async with running_hub([client]) as hub:
            await check(hub.target, "LA000001")  # described, connected
            for _ in range(6):
                # The hub answers INCOMPLETE just inside the caller's deadline, or the caller's
                # deadline passes first: either way the node was not given a fair chance.
                try:
                    r = await check(hub.target, "LA000001", wait_s=0.03)
                    outcome = r.sources[0].outcome
                except grpc.aio.AioRpcError as err:
                    outcome = err.code()
                assert outcome in (check_pb2.OUTCOME_TIMEOUT, grpc.StatusCode.DEADLINE_EXCEEDED)
            await asyncio.sleep(0.1)  # let the hub's cancelled calls finish
            assert client.breaker.state is BreakerState.CLOSED
            r = await check(hub.target, "LA000002")
    finally:
        await node.stop(0)
    assert r.verdict == check_pb2.VERDICT_ALERT


async def test_a_hung_node_given_a_fair_budget_still_opens_the_breaker() -> None:
    fake = FakeProvider.issuer("NZL", ["NZL"], latency_s=5)
    node = ProviderNode(fake, "127.0.0.1:0")
    await node.start()
    client = RemoteProvider(NZL, f"127.0.0.1:{node.port}", breaker_failures=2, retries=0)
    try:
        async with running_hub([client], deadline_ms=400) as hub:
            for _ in range(2):
                r = await check(hub.target, "LA000001")
                assert r.sources[0].outcome == check_pb2.OUTCOME_TIMEOUT
            assert client.breaker.state is BreakerState.OPEN
    finally:
        await node.stop(0)


def _undecodable_node() -> grpc.GenericRpcHandler:
    """Describes NZL, then answers LookupBatch with bytes that are no LookupBatchResponse."""

    def describe(_req: bytes, _ctx: Any) -> bytes:
        msg = provider_pb2.DescribeResponse(provider_id="NZL", issuing_states=["NZL"])
        return msg.SerializeToString()

    def lookup(_req: bytes, _ctx: Any) -> bytes:
        return b"\x0a\xff\xff\xff\xff"

    def raw(fn: Callable[[bytes, Any], bytes]) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=lambda b: b, response_serializer=lambda b: b
        )

    return grpc.method_handlers_generic_handler(
        "rmas.v1.DocumentStatusProvider", {"Describe": raw(describe), "LookupBatch": raw(lookup)}
    )


async def test_an_undecodable_answer_during_a_probe_counts_and_frees_the_probe() -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_undecodable_node(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = RemoteProvider(
        NZL, f"127.0.0.1:{port}", breaker_failures=1, breaker_reset_s=0.1, retries=0
    )
    try:
        async with running_hub([client]) as hub:
            r = await check(hub.target, "LA000001")
            assert r.sources[0].outcome == check_pb2.OUTCOME_ERROR
            assert "cannot be decoded" in r.sources[0].error
            assert client.breaker.state is BreakerState.OPEN
            # Each reset interval lets one probe through; an undecodable probe answer re-opens
            # the breaker instead of leaving it half-open with its probe slot taken for good.
            for _ in range(3):
                await asyncio.sleep(0.15)
                r = await check(hub.target, "LA000001")
                assert "cannot be decoded" in r.sources[0].error
                assert client.breaker.state is BreakerState.OPEN
                assert not client.breaker.probing
    finally:
        await server.stop(0)


def test_the_cli_with_a_tiny_timeout_leaves_the_breaker_closed(tmp_path: Any) -> None:
    """The report's own reproduction: five `rmas check --timeout 0.03` calls, then a normal one."""
    script = tmp_path / "run.py"
    script.write_text(
        "import asyncio, subprocess, sys\n"
        "from rmas.remote.client import RemoteProvider\n"
        "from rmas.remote.node import ProviderNode\n"
        "from rmas.providers import ProviderInfo\n"
        "from rmas.testing import FakeProvider, running_hub\n"
        "async def main():\n"
        "    fake = FakeProvider.issuer('NZL', ['NZL'], latency_s=0.06)\n"
        "    node = ProviderNode(fake, '127.0.0.1:0')\n"
        "    await node.start()\n"
        "    info = ProviderInfo(id='NZL', issuing_states=frozenset({'NZL'}))\n"
        "    target = f'127.0.0.1:{node.port}'\n"
        "    client = RemoteProvider(info, target, breaker_failures=5, retries=0)\n"
        "    async with running_hub([client]) as hub:\n"
        "        cmd = [sys.executable, '-m', 'rmas.cli', 'check', '--hub', hub.target,\n"
        "               '--state', 'NZL', '--number', 'LA000001']\n"
        "        for _ in range(6):\n"
        "            p = await asyncio.create_subprocess_exec(*cmd, '--timeout', '0.03',\n"
        "                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "            await p.wait()\n"
        "        p = await asyncio.create_subprocess_exec(*cmd, '--json', stdout=subprocess.PIPE)\n"
        "        out, _ = await p.communicate()\n"
        "        print(client.breaker.state.value, out.decode())\n"
        "    await node.stop(0)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()
    assert any(line.startswith("closed ") for line in last), done.stdout[-2000:]
    assert '"verdict": "CLEAR"' in done.stdout


async def test_a_healthy_node_is_asked_by_concurrent_first_checks_and_after_impatient_ones() -> (
    None
):
    # The differential test's finding: the node's first Describe was made by whichever check
    # came first, inside that check's budget; concurrent first checks, and every check for a
    # second after a caller with a 4 ms deadline, were answered "not described yet".
    fake = FakeProvider.issuer("NZL", ["NZL"], {("NZL", "LA000002"): RecordStatus.STOLEN})
    node = ProviderNode(fake, "127.0.0.1:0")
    await node.start()
    try:
        for impatient in (True, False):
            client = RemoteProvider(NZL, f"127.0.0.1:{node.port}")
            async with running_hub([client]) as hub:
                if impatient:
                    for _ in range(3):
                        with contextlib.suppress(grpc.aio.AioRpcError):
                            await check(hub.target, "LA000001", wait_s=0.004)
                results = await asyncio.gather(*(check(hub.target, "LA000002") for _ in range(8)))
            assert [r.sources[0].outcome for r in results] == [check_pb2.OUTCOME_ANSWERED] * 8
            assert {r.verdict for r in results} == {check_pb2.VERDICT_ALERT}
    finally:
        await node.stop(0)
