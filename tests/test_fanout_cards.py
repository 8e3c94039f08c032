"""The fan-out's card path (rmas.fanout.FanOut.ask_cards): routing to the home economy's and the
global ABTC providers only, one batch per provider, one deadline, failures as outcomes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from rmas.abtc import UNKNOWN_CARD, CardQuery, CardRecord, CardStatus
from rmas.documents import DocumentQuery
from rmas.errors import ProviderUnavailable
from rmas.fanout import FanOut, Router
from rmas.providers import CardProvider, ProviderInfo, Scope, card_capable
from rmas.verdict import NO_RECORD, Outcome, Record


@dataclass
class Cards:
    info: ProviderInfo
    known: dict[tuple[str, str], CardStatus] = field(default_factory=dict)
    failure: str = ""
    calls: list[list[CardQuery]] = field(default_factory=list)

    async def lookup_many(self, queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        return [NO_RECORD for _ in queries]

    async def lookup_cards(self, queries: Sequence[CardQuery], deadline: float) -> list[CardRecord]:
        self.calls.append(list(queries))
        if self.failure == "down":
            raise ProviderUnavailable("scripted outage")
        if self.failure == "hang":
            await asyncio.Event().wait()
        return [CardRecord(self.known[q.key]) if q.key in self.known else UNKNOWN_CARD
                for q in queries]  # fmt: skip

    async def aclose(self) -> None:
        pass


def issuer(pid: str, abtc: bool = True, **kw: object) -> Cards:
    return Cards(ProviderInfo(id=pid, issuing_states=frozenset({pid}), abtc=abtc), **kw)  # type: ignore[arg-type]


def card(home: str, number: str) -> CardQuery:
    return CardQuery(home, number, "NZL")


async def test_cards_go_to_their_home_economy_and_global_abtc_providers_only() -> None:
    aus = issuer("AUS", known={("AUS", "AU1"): CardStatus.STOLEN})
    nzl = issuer("NZL")
    passports_only = issuer("AUS", abtc=False)
    central = Cards(ProviderInfo(id="ABTC", scope=Scope.GLOBAL, required=False, abtc=True))
    assert isinstance(aus, CardProvider) and card_capable(aus) and not card_capable(passports_only)
    fan = FanOut(Router([aus, nzl, passports_only, central]))
    answers = await fan.ask_cards(
        [card("AUS", "AU1"), card("AUS", "AU2"), card("NZL", "NZ1"), card("SGP", "SG1")],
        time.monotonic() + 1,
    )
    assert [sorted((a.provider_id, a.issuer, a.required) for a in x) for x in answers] == [
        [("ABTC", False, False), ("AUS", True, True)],
        [("ABTC", False, False), ("AUS", True, True)],
        [("ABTC", False, False), ("NZL", True, True)],
        [("ABTC", False, False)],
    ]
    home = next(a for a in answers[0] if a.issuer)
    assert home.record is not None and home.record.status is CardStatus.STOLEN
    # One batch per provider; a provider without the capability configured is never asked.
    assert [len(c) for c in aus.calls] == [2]
    assert len(central.calls) == 1 and len(central.calls[0]) == 4
    assert passports_only.calls == []


async def test_card_failures_are_outcomes_under_the_deadline() -> None:
    down, hung = issuer("AUS", failure="down"), issuer("NZL", failure="hang")
    fan = FanOut(Router([down, hung]))
    start = time.monotonic()
    answers = await fan.ask_cards([card("AUS", "AU1"), card("NZL", "NZ1")], start + 0.2)
    assert time.monotonic() - start < 5
    assert [(a[0].outcome, a[0].record) for a in answers] == [
        (Outcome.UNAVAILABLE, None), (Outcome.TIMEOUT, None),
    ]  # fmt: skip
    assert fan.stats["AUS"].failures == 1
