"""The ``[iapi]`` settings and the CUSRES response codes: the one table of what rmas answers an
airline (docs/airline.md).

Passenger level (``ERP+2``, one group per traveller, ``ERC`` code then ``FTX+AAP`` text):

====  =========================  ============================================================
code  text                       meaning
====  =========================  ============================================================
0Z    OK TO BOARD                every document was checked; board
0Z    OK TO BOARD - NOT CHECKED  ``on_incomplete = "board"``: a document could not be checked
                                 and the hub's operator chose to let the traveller board
1Z    NO BOARD                   a document is reported lost, stolen, revoked or not issued
2Z    CONTACT AUTHORITY          advisory: call the authority's desk before boarding
4Z    INSUFFICIENT DATA          the data sent cannot be checked: correct it and resend
====  =========================  ============================================================

Message level (``ERP+1``): ``0`` accepted (implied by an answer with passenger groups, never
written), ``1`` rejected (the whole message: syntax, counts, size, sender), with the reason in
``FTX+AAP``. Codes ``0Z``, ``1Z``, ``2Z``, ``4Z``, ``0`` and ``1`` are those interactive API
implementations use (for example China's iAPI, as departure-control systems read it); every code
and text is configurable in ``[iapi]`` to match the receiving airline's implementation guide.

Texts are written in the request's character set (``rmas.iapi.cusres.fit_text``).

This module is the ``[iapi]`` table's own (:class:`IapiConfig`, read by :mod:`rmas.config`) and
imports no EDIFACT code: the airline channel (:mod:`rmas.iapi`) imports it, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rmas.verdict import Directive

__all__ = ["CODE_KEYS", "CusresCodes", "IapiConfig"]

#: The configurable entries, as ``[iapi]`` names them (``<key>_code`` / ``<key>_text``).
CODE_KEYS = (
    "ok_to_board",
    "unchecked",
    "do_not_board",
    "contact_authority",
    "insufficient_data",
    "syntax_error",
)


@dataclass(frozen=True, slots=True)
class CusresCodes:
    """ERC codes and FTX texts (see the module's table)."""

    ok_to_board: tuple[str, str] = ("0Z", "OK TO BOARD")
    #: OK_TO_BOARD although a document could not be checked (``on_incomplete = "board"``).
    unchecked: tuple[str, str] = ("0Z", "OK TO BOARD - NOT CHECKED")
    do_not_board: tuple[str, str] = ("1Z", "NO BOARD")
    contact_authority: tuple[str, str] = ("2Z", "CONTACT AUTHORITY")
    insufficient_data: tuple[str, str] = ("4Z", "INSUFFICIENT DATA")
    #: Message level (ERP+1): the whole message is rejected.
    syntax_error: tuple[str, str] = ("1", "MESSAGE REJECTED")

    def for_directive(self, d: Directive, *, unchecked: bool = False) -> tuple[str, str]:
        if unchecked and d is Directive.OK_TO_BOARD:
            return self.unchecked
        return {
            Directive.OK_TO_BOARD: self.ok_to_board,
            Directive.DO_NOT_BOARD: self.do_not_board,
            Directive.CONTACT_AUTHORITY: self.contact_authority,
            Directive.INSUFFICIENT_DATA: self.insufficient_data,
        }[d]


@dataclass(frozen=True, slots=True)
class IapiConfig:
    """The ``[iapi]`` table."""

    #: Our identity in the CUSRES envelope when the PAXLST names no recipient.
    hub_id: str = "RMAS"
    #: ERC codes and texts (above).
    codes: CusresCodes = field(default_factory=CusresCodes)
    #: Largest PAXLST accepted, in bytes.
    max_bytes: int = 2 * 1024 * 1024
    #: Interchanges (and split flights) remembered for resends and part totals.
    remember: int = 10_000
    #: Seconds after an answer during which a resend may get the very same CUSRES (it is checked
    #: again all the same); after it, a resend is answered afresh.
    resend_window_s: float = 300.0
    #: The state whose visas a DOC+V without LOC+91 is (the authority's own, e.g. "CHN"); ""
    #: (the default): such a visa is not checked.
    visa_issuer: str = ""
