"""Record changes: how a provider tells the hub that a document's status may have changed.

A document checked OK-to-board at check-in may be reported stolen before the flight leaves. The
hub keeps its open flights (``rmas.flights``) keyed by each document's keyed hash; a provider that
can report changes implements :class:`ChangeFeed`, and the hub's watcher turns each
:class:`DocumentChange` into a re-check of the passengers holding that document.

The contract, for every feed (the SQL store's change log, a remote node's ``WatchChanges`` stream,
the SLTD-style store's record list polled by cursor):

- ``current_position()`` is the position just after the newest change recorded so far: a hub
  that starts watching a provider for the first time starts there (no history is replayed).
- ``watch_changes(since)`` yields the changes recorded *after* position ``since``, oldest first,
  in batches (each a non-empty sequence: what the feed read at once, e.g. one page of its log),
  and keeps yielding as new ones are recorded (it does not end on its own).
- ``position`` is opaque text, increasing in the feed's own order; the hub stores the position of
  the last change it has acted on and resumes from it after a restart or a lost connection.
- A change names a document (``issuing_state``, ``number``, normalised as
  :mod:`rmas.documents` normalises them), never the new status: the hub asks again through the
  normal fan-out, so a change can only ever lead to a fresh, complete verdict.
- A feed that cannot go on (connection lost, store closed) raises
  :class:`~rmas.errors.ProviderError`; the watcher retries from the last position with backoff.
- A feed that can no longer serve ``since`` (its history was pruned past it) raises
  :class:`ChangesLost`; the watcher then re-checks every open passenger the provider answers for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from rmas.errors import ProviderError

__all__ = ["ChangeFeed", "ChangesLost", "DocumentChange", "change_capable"]


@dataclass(frozen=True, slots=True)
class DocumentChange:
    """One document whose record changed at a provider (added, changed or withdrawn)."""

    issuing_state: str
    number: str
    #: The feed's position just after this change: resume from here.
    position: str


class ChangesLost(ProviderError):
    """The feed can no longer serve changes since the position asked for (history pruned)."""


@runtime_checkable
class ChangeFeed(Protocol):
    """The optional capability of a provider that reports record changes (see the module)."""

    async def current_position(self) -> str:
        """The position just after the newest change recorded so far."""
        ...

    def watch_changes(self, since: str) -> AsyncIterator[Sequence[DocumentChange]]:
        """The changes after ``since``, oldest first, without end (see the module)."""
        ...


def change_capable(provider: object) -> bool:
    """Whether the hub can watch ``provider`` for record changes."""
    return isinstance(provider, ChangeFeed)
