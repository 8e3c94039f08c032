"""Provider conformance: the checks every provider must pass, asked in-process or over gRPC.

Two kits share these checks. :func:`check_provider` (exported by :mod:`rmas.testing`) runs them
in-process against a Python plug-in, through the :class:`~rmas.providers.Provider` contract, with
checks only a Python object needs (its ``info``, the types it answers); ``rmas conformance``
(:mod:`rmas.remote.conformance`) runs them against a national node over gRPC, with checks only a
node needs (refs, key echo, malformed requests, the batch limit refused). The shared checks:

- ``unknown_documents``: numbers nobody issued answer NO_RECORD (NOT_ISSUED for a provider that
  holds a complete registry), one per state;
- ``known_statuses``: every known document answers its status;
- ``deadline``: calls abandoned at a 50 ms deadline end promptly and leave the provider free to
  answer the next call at once (one still busy with abandoned work fails);
- ``large_batch``: a batch at the limit (at most 1,000) is answered in full;
- ``concurrency``: 32 calls at once are all answered, consistently.

Each result is PASS, FAIL (with the reason) or SKIPPED (with the reason: a check that could not
run is never reported as passed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from rmas.abtc import CardQuery, CardRecord
from rmas.changes import ChangeFeed
from rmas.documents import DocumentQuery, normalise_number
from rmas.providers import (
    CardProvider,
    Provider,
    ProviderInfo,
    Registry,
    Scope,
    card_capable,
    registry_of,
)
from rmas.states import canonical_economy, is_known_state
from rmas.verdict import Record

__all__ = [
    "FAIL",
    "PASS",
    "SHARED_CHECKS",
    "SKIPPED",
    "Asker",
    "CheckResult",
    "Fail",
    "Skip",
    "check_provider",
    "run_checks",
    "unknown_number",
]

PASS, FAIL, SKIPPED = "PASS", "FAIL", "SKIPPED"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    #: PASS, FAIL or SKIPPED (could not run; the detail says why).
    status: str
    detail: str

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}


class Fail(Exception):
    """The check failed; the message says why."""


class Skip(Exception):
    """The check could not run (nothing to check it with); never counted as passed."""


def unknown_number() -> str:
    return "ZQ" + os.urandom(5).hex().upper()[:8]


class Asker(Protocol):
    """How the shared checks ask a provider: documents by (state, number), answers by status."""

    #: The states to ask about, and the documents whose status is known (state, number, status).
    states: list[str]
    known: list[tuple[str, str, str]]

    @property
    def limit(self) -> int:
        """The provider's batch limit (0: none declared)."""
        ...

    @property
    def complete(self) -> bool:
        """Whether the provider holds a complete registry (unknown numbers: NOT_ISSUED)."""
        ...

    async def statuses(
        self, keys: Sequence[tuple[str, str]], budget_s: float | None = None
    ) -> list[str]:
        """The status name answered for each key, in the order answered; TimeoutError when
        ``budget_s`` (else the kit's call timeout) passes first."""
        ...


async def unknown_documents(a: Asker) -> str:
    expected = "NOT_ISSUED" if a.complete else "NO_RECORD"
    got = await a.statuses([(s, unknown_number()) for s in a.states])
    if got != [expected] * len(a.states):
        raise Fail(f"unknown numbers answered {got}, expected {expected} for each state")
    return f"{expected} for {len(a.states)} state(s)"


async def known_statuses(a: Asker) -> str:
    if not a.known:
        raise Skip("no --known documents given (STATE:NUMBER:STATUS)")
    got = await a.statuses([(s, n) for s, n, _st in a.known])
    wrong = [
        f"{s}:{n} answered {status}, expected {st}"
        for (s, n, st), status in zip(a.known, got, strict=False)
        if status != st
    ]
    if wrong or len(got) != len(a.known):
        raise Fail("; ".join(wrong) or "wrong number of results")
    return f"{len(a.known)} known document(s) answered their status"


async def deadline(a: Asker) -> str:
    """Calls abandoned at a 50 ms deadline must not keep the provider busy afterwards.

    From outside, a provider that stops work when the deadline passes and one that finishes it
    anyway differ in one way: the second is still busy with abandoned work when the next call
    arrives. So: three abandoned full batches, then one small call that must be answered within
    a second.
    """
    state = a.states[0]
    keys = [(state, unknown_number()) for _ in range(max(1, a.limit or 100))]
    for _ in range(3):
        start = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await a.statuses(keys, budget_s=0.05)
        if time.monotonic() - start > 0.5:
            raise Fail("a call with a 50 ms deadline did not end within 500 ms")
    start = time.monotonic()
    try:
        await a.statuses([(state, unknown_number())], budget_s=1.0)
    except TimeoutError:
        raise Fail(
            "after three calls abandoned at their deadline the node took over 1 s to "
            "answer a one-item call: it keeps working on abandoned calls"
        ) from None
    return (
        f"short deadlines end promptly; next call answered in "
        f"{(time.monotonic() - start) * 1000:.0f} ms"
    )


async def large_batch(a: Asker) -> str:
    n = min(a.limit or 1000, 1000)
    got = await a.statuses([(a.states[0], unknown_number()) for _ in range(n)])
    if len(got) != n:
        raise Fail(f"{n} items got {len(got)} results")
    return f"{n} items answered"


async def concurrency(a: Asker) -> str:
    key = (a.states[0], unknown_number())
    answers = await asyncio.gather(*(a.statuses([key]) for _ in range(32)))
    if any(len(got) != 1 for got in answers) or len({got[0] for got in answers}) != 1:
        raise Fail("32 concurrent calls for one document did not all answer alike")
    return "32 concurrent calls answered alike"


#: The checks both kits run, by name (each kit places them among its own).
SHARED_CHECKS: dict[str, Callable[[Asker], Awaitable[str]]] = {
    "unknown_documents": unknown_documents,
    "known_statuses": known_statuses,
    "deadline": deadline,
    "large_batch": large_batch,
    "concurrency": concurrency,
}


async def run_checks(
    checks: Sequence[tuple[str, Callable[[], Awaitable[str]]]],
    *,
    ready: Callable[[str], str],
    failure: Callable[[Exception], str | None] = lambda exc: None,
) -> list[CheckResult]:
    """Run ``checks`` in order, one result each. ``ready(name)`` is "" when the check can run,
    else why it is skipped; ``failure`` describes an exception of the kit's transport (None:
    the class and message)."""
    out: list[CheckResult] = []
    for name, check in checks:
        why = ready(name)
        if why:
            out.append(CheckResult(name, SKIPPED, why))
            continue
        try:
            out.append(CheckResult(name, PASS, await check()))
        except Skip as exc:
            out.append(CheckResult(name, SKIPPED, str(exc)))
        except Fail as exc:
            out.append(CheckResult(name, FAIL, str(exc)))
        except Exception as exc:  # an answer the kit could not even read
            out.append(CheckResult(name, FAIL, failure(exc) or f"{type(exc).__name__}: {exc}"))
    return out


# -- in-process, for Python plug-ins --------------------------------------------------------------


@dataclass
class _Local:
    """The shared checks' view of a Python provider, asked through its ``lookup_many``."""

    provider: Provider
    states: list[str]
    known: list[tuple[str, str, str]]
    known_cards: list[tuple[str, str, str]]
    timeout: float

    @property
    def limit(self) -> int:
        return self.provider.info.max_batch

    @property
    def complete(self) -> bool:
        return registry_of(self.provider) is Registry.COMPLETE

    async def statuses(
        self, keys: Sequence[tuple[str, str]], budget_s: float | None = None
    ) -> list[str]:
        queries = [DocumentQuery(s, normalise_number(n)) for s, n in keys]
        budget = budget_s or self.timeout
        async with asyncio.timeout(budget):
            records = await self.provider.lookup_many(queries, time.monotonic() + budget)
        wrong = [r for r in records if not isinstance(r, Record)]
        if wrong:
            raise Fail(f"lookup_many answered {type(wrong[0]).__name__}, not a Record")
        return [r.status.value for r in records]

    async def contract(self) -> str:
        """The Provider contract: ``info`` (a ProviderInfo naming its states as rmas routes
        them), ``lookup_many`` and ``aclose``."""
        if not isinstance(self.provider, Provider):
            raise Fail("not a Provider: info, lookup_many and aclose are needed")
        info = self.provider.info
        if not isinstance(info, ProviderInfo) or not info.id:
            raise Fail("info must be a ProviderInfo with an id")
        odd = sorted(s for s in info.issuing_states if canonical_economy(s) != s)
        unknown = sorted(s for s in info.issuing_states if not is_known_state(s))
        if unknown or odd:
            raise Fail(f"info names states rmas does not route: {unknown or odd}")
        if (info.scope is Scope.ISSUER) != bool(info.issuing_states):
            raise Fail("an issuer provider names its states; a global one names none")
        if info.max_batch < 0 or info.timeout_s < 0:
            raise Fail("info.max_batch and info.timeout_s must be 0 or more")
        return f"{info.id}: {info.scope.value}, states {sorted(info.issuing_states)}"

    async def cards(self) -> str:
        """ABTC cards (:class:`~rmas.providers.CardProvider`): unknown cards answer NOT_ISSUED,
        known cards their status, one CardRecord per query, in order."""
        provider = self.provider
        if not card_capable(provider) or not isinstance(provider, CardProvider):
            raise Skip("not a CardProvider")
        asked = [(s, unknown_number(), "NOT_ISSUED") for s in self.states]
        asked += [(s, n, st.upper()) for s, n, st in self.known_cards]
        queries = [CardQuery(s, normalise_number(n), s) for s, n, _st in asked]
        async with asyncio.timeout(self.timeout):
            records = await provider.lookup_cards(queries, time.monotonic() + self.timeout)
        if len(records) != len(asked) or not all(isinstance(r, CardRecord) for r in records):
            raise Fail(f"{len(asked)} cards got {len(records)} results, not one CardRecord each")
        wrong = [
            f"{s}:{n} answered {r.status.value}, expected {st}"
            for (s, n, st), r in zip(asked, records, strict=True)
            if r.status.value != st
        ]
        if wrong:
            raise Fail("; ".join(wrong))
        return f"NOT_ISSUED for unknown cards, {len(self.known_cards)} known card(s) answered"

    async def changes(self) -> str:
        """A :class:`~rmas.changes.ChangeFeed` tells its current position (text)."""
        if not isinstance(self.provider, ChangeFeed):
            raise Skip("not a ChangeFeed")
        async with asyncio.timeout(self.timeout):
            position = await self.provider.current_position()
        if not isinstance(position, str):
            raise Fail(f"current_position() answered {type(position).__name__}, not text")
        return "current_position() answers text"


async def check_provider(
    provider: Provider,
    *,
    states: Sequence[str] = (),
    known: Sequence[tuple[str, str, str]] = (),
    known_cards: Sequence[tuple[str, str, str]] = (),
    call_timeout_s: float = 5.0,
) -> list[CheckResult]:
    """Run the conformance checks in-process against a Python provider (not closed after).

    ``states``: the states to ask about (default: the provider's own; ``UTO`` for a global one);
    ``known``: documents whose status it must answer (state, number, status), likewise
    ``known_cards``. One result per check: ``contract``, the shared checks, ``abtc_cards`` and
    ``changes`` (SKIPPED when the provider lacks the capability)."""
    own = sorted(provider.info.issuing_states) if isinstance(provider, Provider) else []
    local = _Local(
        provider, list(states) or own or ["UTO"], list(known), list(known_cards), call_timeout_s
    )
    (contract,) = await run_checks([("contract", local.contract)], ready=lambda name: "")
    checks = [(name, _bind(check, local)) for name, check in SHARED_CHECKS.items()]
    checks += [("abtc_cards", local.cards), ("changes", local.changes)]
    why = "" if contract.passed else "the provider does not meet the Provider contract"
    return [contract, *await run_checks(checks, ready=lambda name: why)]


def _bind(check: Callable[[Asker], Awaitable[str]], asker: Asker) -> Callable[[], Awaitable[str]]:
    return lambda: check(asker)
