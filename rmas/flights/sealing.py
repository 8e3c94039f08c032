"""How the hub keeps a document of an open flight: a keyed hash and a sealed query, never clear.

The document key is the audit trail's (:class:`~rmas.audit.entry.DocumentKeyer`): a record change
names a document, and the hub finds the passengers holding it by that key. To check a passenger
again, the hub needs the document's query data (number, holder data); it keeps them sealed with
AES-256-GCM under a key derived (HKDF-SHA256, its own label) from the same key material, the
document key as associated data (a sealed query cannot be moved to another document's row).
Whoever reads the flight store without the key file learns neither numbers nor names.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rmas.audit.entry import DocumentKeyer, read_key_file
from rmas.documents import DocumentQuery, DocumentType, Holder

__all__ = ["SEAL_LABEL", "FlightKeys"]

#: HKDF's info: the sealing key is this label's, never the document key's HMAC key itself.
SEAL_LABEL = b"rmas flights: sealed document queries v1"
_NONCE = 12
#: json.dumps(..., separators=(",", ":")), without its per-call set-up.
_json = json.JSONEncoder(separators=(",", ":")).encode


class FlightKeys:
    """Document keys and sealed queries under one key file's material."""

    __slots__ = ("_aead", "keyer")

    def __init__(self, secret: bytes) -> None:
        self.keyer = DocumentKeyer(secret)
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SEAL_LABEL)
        self._aead = AESGCM(hkdf.derive(secret))

    @classmethod
    def from_file(cls, path: str | Path) -> FlightKeys:
        return cls(read_key_file(path, "flights.key_file"))

    def document_key(self, issuing_state: str, number: str) -> str:
        """The key of a document named by a record change (both already normalised)."""
        return self.keyer.key_of(issuing_state, number)

    def key_of(self, query: DocumentQuery) -> str:
        economy, number = query.key
        return self.keyer.key_of(economy, number)

    def seal(self, query: DocumentQuery, document_key: str) -> bytes:
        return self.seal_all([(query, document_key)])[0]

    def seal_all(self, queries: Sequence[tuple[DocumentQuery, str]]) -> list[bytes]:
        """Each ``(query, document key)`` sealed: a random nonce (all drawn at once), then the
        query's fields as JSON, encrypted with the document key as associated data."""
        nonces = os.urandom(_NONCE * len(queries))
        encrypt = self._aead.encrypt
        out = []
        for i, (query, document_key) in enumerate(queries):
            h = query.holder
            plain = _json(
                [
                    query.issuing_state,
                    query.number,
                    query.type.value,
                    h.surname,
                    h.given_names,
                    h.birth_date.isoformat() if h.birth_date else "",
                    h.sex,
                    h.nationality,
                    query.expiry_date.isoformat() if query.expiry_date else "",
                    query.ref,
                ]
            ).encode()
            nonce = nonces[i * _NONCE : (i + 1) * _NONCE]
            out.append(nonce + encrypt(nonce, plain, document_key.encode()))
        return out

    def unseal(self, sealed: bytes, document_key: str) -> DocumentQuery:
        """The query sealed for ``document_key``; raises cryptography's InvalidTag when it was
        sealed under another key or for another document."""
        plain = self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], document_key.encode())
        state, number, dtype, surname, given, birth, sex, nat, expiry, ref = json.loads(plain)
        return DocumentQuery(
            issuing_state=state,
            number=number,
            type=DocumentType(dtype),
            holder=Holder(
                surname, given, dt.date.fromisoformat(birth) if birth else None, sex, nat
            ),
            expiry_date=dt.date.fromisoformat(expiry) if expiry else None,
            ref=ref,
        )

    def __repr__(self) -> str:  # never show the key
        return "FlightKeys(<secret>)"
