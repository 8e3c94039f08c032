"""An SLTD-style central store (the Interpol Stolen and Lost Travel Documents pattern) + adapter.

- :mod:`.codes` — the store's own vocabulary (ISO alpha-2 countries, its type and status names);
- :mod:`.store` — its database: records pushed by issuing countries, searched by number;
- :mod:`.service` — the HTTP/JSON service (``rmas sltd serve``), with faults it can be told to
  simulate;
- :mod:`.adapter` — the ``sltd`` provider kind: bulk search, verification by full record;
- :mod:`.cli` — ``rmas sltd serve`` and ``rmas sltd import``.
"""
