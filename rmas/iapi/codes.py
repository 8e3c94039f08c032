"""The CUSRES response codes: the one table of what rmas answers an airline (docs/airline.md).

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

Texts are written in the request's character set; under UNOA (the usual level) that means upper
case letters, digits, space and ``. , - ( ) / = ' + : ? ! " % & * ; < >`` only (:func:`fit_text`).
"""

from __future__ import annotations

from dataclasses import dataclass

from rmas.verdict import Directive

__all__ = ["CODE_KEYS", "CusresCodes", "fit_text"]

#: The configurable entries, as ``[iapi]`` names them (``<key>_code`` / ``<key>_text``).
CODE_KEYS = (
    "ok_to_board",
    "unchecked",
    "do_not_board",
    "contact_authority",
    "insufficient_data",
    "syntax_error",
)

# ISO 9735 level A: upper case letters, digits, space and these.
_LATIN = frozenset({"UNOC", "UNOD", "UNOE", "UNOF", "UNOW", "UNOY"})
_UNOA = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-()/='+:?!\"%&*;<>")


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


def fit_text(text: str, syntax: str, limit: int = 350) -> str:
    """``text`` in what the syntax level can carry: UNOB printable ASCII, UNOC and above printable
    Latin-1, UNOA (and any other) upper case and its few signs; anything else becomes a space.
    Bounded to
    ``limit`` characters (FTX 4440 is an..512)."""
    if syntax in ("UNOB", "IATB"):
        out = "".join(c if " " <= c <= "~" else " " for c in text)
    elif syntax in _LATIN:
        out = "".join(c if c.isprintable() and ord(c) < 256 else " " for c in text)
    else:  # UNOA, IATA, SIRE and anything unknown: the smallest set
        out = "".join(c if c in _UNOA else " " for c in text.upper())
    out = " ".join(out.split())
    return out if len(out) <= limit else out[: limit - 3] + "..."
