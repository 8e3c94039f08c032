"""What the airline channel checks of a traveller: one hub item per document (rules in
:mod:`rmas.iapi.channel`'s module text)."""

from __future__ import annotations

from rmas.documents import (
    DocumentQuery,
    DocumentType,
    valid_holder,
    valid_plain,
    validate_document,
)
from rmas.errors import FieldViolation, ValidationError
from rmas.hub import InvalidDocument
from rmas.iapi.paxlst import Traveller

__all__ = ["traveller_items"]


def traveller_items(t: Traveller, visa_issuer: str) -> list[DocumentQuery | InvalidDocument]:
    """One item per document to check. A traveller-level fault (no surname, a malformed birth
    date) is INSUFFICIENT_DATA: it joins the first invalid document's item, or is one more item
    when every document can be checked (the documents are checked with the valid data)."""
    ref = t.passenger_ref or t.booking_ref or str(t.position)
    out: list[DocumentQuery | InvalidDocument] = []
    # The usual traveller first: data that is valid as it stands, read without field paths;
    # anything else goes through validate_document, which names each fault.
    holder = valid_holder(t.surname, t.given_names, t.birth_date, t.sex, t.nationality)
    for j, d in enumerate(t.documents):
        state = d.issuing_state
        if not d.issuer_given and DocumentType.from_code(d.type_code) is DocumentType.VISA:
            if not visa_issuer:
                continue  # not checked: its issuer is implied and not configured
            state = visa_issuer
        if d.problems:
            out.append(InvalidDocument(ref, tuple(d.problems)))
            continue
        if holder is not None:
            q = valid_plain(state, d.number, ref, d.type_code, holder, d.expiry_date)
            if q is not None:
                out.append(q)
                continue
        try:
            out.append(
                validate_document(
                    issuing_state=state,
                    number=d.number,
                    type_code=d.type_code,
                    surname=t.surname,
                    given_names=t.given_names,
                    birth_date=t.birth_date,
                    sex=t.sex,
                    nationality=t.nationality,
                    expiry_date=d.expiry_date,
                    ref=ref,
                    prefix=f"travellers[{t.position - 1}].documents[{j}]",
                )
            )
        except ValidationError as exc:
            out.append(InvalidDocument.from_error(ref, exc))
    problems = list(t.problems)
    if not out:
        what = "no DOC segment" if not t.documents else "no document that can be checked"
        problems.append(FieldViolation(f"travellers[{t.position - 1}].documents", what))
    if problems:
        i = next((i for i, x in enumerate(out) if isinstance(x, InvalidDocument)), None)
        if i is None:
            out.append(InvalidDocument(ref, tuple(problems)))
        else:
            bad = out[i]
            assert isinstance(bad, InvalidDocument)
            out[i] = InvalidDocument(ref, (*problems, *bad.violations))
    return out
