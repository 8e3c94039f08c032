"""One table of document-type codes: every channel reads the same code as the same type.

The expectations below are written from ICAO 9303 (document codes: P passport, I/A/C identity
cards, V visa, the second character the issuer's choice) and the PAXLST DOC code list (IP passport
card, F non-standard, M military), not from rmas's table; each channel is driven through its real
path: a CheckDocument by fields and by MRZ, a CheckPaxlst, the CSV import of a SQL store, the CLI's
``--type`` and the SLTD-style store's vocabulary.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from adapters.sltd.codes import TYPES as SLTD_TYPES
from adapters.sltd.codes import type_from_sltd
from adapters.sqlstore.importer import import_csv
from adapters.sqlstore.provider import SqlStoreProvider
from rmas.client import check_document_request, document_type_pb
from rmas.documents import DocumentType
from rmas.mrz import Layout
from rmas.providers import ProviderInfo
from rmas.testing import FakeProvider, compose, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc, common_pb2

PASSPORT, CARD, VISA, OTHER = (
    common_pb2.DOCUMENT_TYPE_PASSPORT,
    common_pb2.DOCUMENT_TYPE_IDENTITY_CARD,
    common_pb2.DOCUMENT_TYPE_VISA,
    common_pb2.DOCUMENT_TYPE_OTHER,
)
#: code -> the type every channel must read it as.
EXPECTED = {
    "P": PASSPORT, "PT": PASSPORT, "PD": PASSPORT, "PO": PASSPORT, "PS": PASSPORT,
    "I": CARD, "ID": CARD, "IP": CARD, "A": CARD, "AC": CARD, "C": CARD, "CR": CARD,
    "V": VISA, "VS": VISA,
    "F": OTHER, "M": OTHER,
}  # fmt: skip
_LETTER = {PASSPORT: "P", CARD: "I", VISA: "V", OTHER: "O"}


@pytest.fixture
async def stub() -> object:
    nzl = FakeProvider.issuer("NZL", ["NZL"])
    async with running_hub([nzl]) as hub, grpc.aio.insecure_channel(hub.target) as ch:
        yield check_pb2_grpc.DocumentCheckStub(ch)


async def test_fields_by_cli_code_are_read_as_the_table_says(stub: object) -> None:
    for code, want in EXPECTED.items():
        resp = await stub.CheckDocument(  # type: ignore[attr-defined]
            check_document_request(number="AB123456", state="NZL", type_code=code)
        )
        assert (code, resp.result.document.type) == (code, want)


def test_the_cli_refuses_a_code_no_channel_defines() -> None:
    for bad in ("Q", "PASSPRT", "X1", "PPP"):
        with pytest.raises(ValueError, match="unknown document type"):
            document_type_pb(bad)


_MRZ_CODES = {"P<": Layout.TD3, "PD": Layout.TD3, "I<": Layout.TD1, "ID": Layout.TD1,
              "AC": Layout.TD1, "C<": Layout.TD1, "A<": Layout.TD1, "V<": Layout.MRV_A}  # fmt: skip


async def test_mrz_document_codes_are_read_as_the_table_says(stub: object) -> None:
    for code, layout in _MRZ_CODES.items():
        lines = compose(
            layout, document_code=code, issuing_state="NZL", surname="TEST", given_names="ANNA",
            document_number="AB123456", nationality="NZL", birth_date="800101", sex="F",
            expiry_date="301231",
        )  # fmt: skip
        resp = await stub.CheckDocument(  # type: ignore[attr-defined]
            check_pb2.CheckDocumentRequest(mrz_lines=lines)
        )
        assert (code, resp.result.document.type) == (code, EXPECTED[code.rstrip("<")])


def _paxlst(codes: list[str]) -> bytes:
    segs = [
        "UNA:+.? '", "UNB+UNOA:4+AIRNZ+RMASHUB+261123:0900+ICR0009'",
        "UNH+M1+PAXLST:D:05B:UN:IATA'", "BGM+745'", "NAD+MS+++DCS'", "TDT+20+NZ1+++NZ'",
        "LOC+125+AKL'", "DTM+189:2611231030:201'", "LOC+87+SYD'", "DTM+232:2611231300:201'",
    ]  # fmt: skip
    for i, code in enumerate(codes):
        segs += [
            f"NAD+FL+++TEST:P{i}'", "ATT+2++F'", "DTM+329:800101'", f"RFF+ABO:P{i}'",
            f"DOC+{code}:110:111+AB{i:06d}'", "DTM+36:301231'", "LOC+91+NZL'",
        ]  # fmt: skip
    body_count = len(segs) - 2 + 2  # UNH..UNT inclusive, less UNA/UNB
    segs += [f"CNT+42:{len(codes)}'", f"UNT+{body_count}+M1'", "UNZ+1+ICR0009'"]
    return "".join(segs).encode()


async def test_paxlst_doc_codes_are_read_as_the_table_says(stub: object) -> None:
    codes = list(EXPECTED)
    resp = await stub.CheckPaxlst(  # type: ignore[attr-defined]
        check_pb2.CheckPaxlstRequest(message=_paxlst(codes))
    )
    assert not resp.errors
    # Results come in PAXLST order.
    assert [r.document.type for r in resp.results] == [EXPECTED[c] for c in codes]


async def test_csv_import_stores_the_type_the_table_says(tmp_path: Path) -> None:
    rows = "".join(f"NZL,AB{i:06d},{code},STOLEN,,R{i}\n" for i, code in enumerate(EXPECTED))
    (tmp_path / "s.csv").write_text(
        "issuing_state,document_number,document_type,status,reported_on,record_ref\n" + rows
    )
    url = f"sqlite+aiosqlite:///{tmp_path / 's.db'}"
    report = await import_csv(url, tmp_path / "s.csv")
    assert report.rejected == ()
    store = SqlStoreProvider(ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"})), url)
    async with running_hub([store]) as hub, grpc.aio.insecure_channel(hub.target) as ch:
        for i, (code, want) in enumerate(EXPECTED.items()):
            resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
                check_document_request(number=f"AB{i:06d}", state="NZL")
            )
            (src,) = resp.result.sources
            assert (code, src.record.document_type) == (code, _LETTER[want])


def test_the_sltd_vocabulary_is_read_through_the_same_table() -> None:
    want = {"PASSPORT": PASSPORT, "ID_CARD": CARD, "VISA": VISA, "OTHER": OTHER}
    assert set(SLTD_TYPES) == set(want)
    for word, t in want.items():
        assert type_from_sltd(word).letter == _LETTER[t]
        assert DocumentType.from_code(word).letter == _LETTER[t]
