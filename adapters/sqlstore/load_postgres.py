"""An import's load on PostgreSQL: one transaction on asyncpg's connection, by swap (COPY into
a fresh table, keys built once) or upsert (COPY into a temporary table, then ``INSERT ... ON
CONFLICT``); see :mod:`adapters.sqlstore.importer`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from adapters.sqlstore.bulk import UPSERT, Phases, pipeline
from adapters.sqlstore.changelog import log_reload
from adapters.sqlstore.csvrows import COLUMNS, Row
from rmas.errors import StoreError

__all__ = ["PG_INDEX_MEMORY", "PG_SWAP_LOCK_ATTEMPTS", "PG_SWAP_LOCK_WAIT", "PG_VACUUM_AFTER_SWAP",
           "load_pg"]  # fmt: skip

_PG_UPSERT_FROM_LOAD = (
    f"INSERT INTO documents ({', '.join(COLUMNS)}) "
    f"SELECT {', '.join(COLUMNS)} FROM load_documents" + UPSERT
)

#: Memory for building the unique index of a swap (this transaction only): the sort of ten
#: million keys then runs in memory instead of spilling to disk.
PG_INDEX_MEMORY = "512MB"

# Things a swap would not carry over to the fresh table; any of them keeps a replace in place.
_PG_SWAP_BLOCKERS = """
SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgrelid = 'documents'::regclass
    AND NOT tgisinternal
UNION ALL SELECT 'policy ' || polname FROM pg_policy WHERE polrelid = 'documents'::regclass
UNION ALL SELECT 'row security' FROM pg_class WHERE oid = 'documents'::regclass AND relrowsecurity
UNION ALL SELECT 'publication ' || p.pubname FROM pg_publication_rel r
    JOIN pg_publication p ON p.oid = r.prpubid WHERE r.prrelid = 'documents'::regclass
UNION ALL SELECT 'view ' || w.ev_class::regclass::text FROM pg_depend d
    JOIN pg_rewrite w ON w.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = 'documents'::regclass
UNION ALL SELECT 'foreign key ' || conname FROM pg_constraint
    WHERE confrelid = 'documents'::regclass
LIMIT 1
"""


async def load_pg(
    driver: Any, chunks: AsyncIterator[list[Row]], *, replace: bool, phases: Phases
) -> tuple[int, int, str]:
    """Load on an asyncpg connection in one transaction; returns (inserted, updated, path)."""
    async with driver.transaction():
        # Writers wait for this import (as they waited for its row locks before); readers do not.
        await driver.execute("LOCK TABLE documents IN SHARE ROW EXCLUSIVE MODE")
        before = 0 if replace else int(await driver.fetchval("SELECT count(*) FROM documents"))
        blocker = (
            await driver.fetchval(_PG_SWAP_BLOCKERS) if before == 0 else "the store holds records"
        )
        if blocker is None:
            inserted, total = await _pg_swap(driver, chunks, phases)
            path = "swap"
        else:
            if replace:
                # In the same transaction as the load: readers see the old records until commit.
                await driver.execute("DELETE FROM documents")
            await driver.execute(
                "CREATE TEMP TABLE load_documents (LIKE documents INCLUDING DEFAULTS) "
                "ON COMMIT DROP"
            )
            total = await pipeline(chunks, lambda chunk: _copy_pg(driver, chunk))
            if total >= 10_000:
                # Fresh planner statistics after a bulk load: without them PostgreSQL's plan for
                # the batch join was six times slower on 10 million records (p99 50 ms -> 8.8 ms).
                await driver.execute("ANALYZE documents")
            inserted = int(await driver.fetchval("SELECT count(*) FROM documents")) - before
            path = "upsert"
            phases.mark("upsert")
            if replace:
                phases.marks["in_place_because"] = blocker
        await log_reload(driver, "postgresql")  # any record may have changed (changelog)
    phases.mark("commit")
    if path == "swap" and PG_VACUUM_AFTER_SWAP:
        # Outside the transaction (VACUUM cannot run in one): the new rows are committed, and the
        # first lookups would otherwise each set hint bits on the pages they read.
        await driver.execute("VACUUM documents")
        phases.mark("vacuum")
    return inserted, total - inserted, path


PG_VACUUM_AFTER_SWAP = True


async def _copy_pg(driver: Any, rows: Sequence[Row]) -> None:
    """COPY a chunk into the temporary table, upsert it, empty the table: about 1.5x the rate of
    executemany. Chunks are upserted in order, so a later row for a document wins."""
    await driver.copy_records_to_table("load_documents", records=rows, columns=list(COLUMNS))
    await driver.execute(_PG_UPSERT_FROM_LOAD)
    await driver.execute("TRUNCATE load_documents")


async def _pg_swap(
    driver: Any, chunks: AsyncIterator[list[Row]], phases: Phases
) -> tuple[int, int]:
    """COPY into ``documents_load`` (no index), build its keys, ANALYZE it, and put it in place of
    ``documents``. All in the caller's transaction. Returns (rows in the store, rows loaded)."""
    # Everything but the indexes: columns, defaults, NOT NULL and CHECK constraints, storage.
    await driver.execute(
        "CREATE TABLE documents_load (LIKE documents INCLUDING ALL EXCLUDING INDEXES)"
    )
    total = await pipeline(
        chunks,
        lambda chunk: driver.copy_records_to_table(
            "documents_load", records=chunk, columns=list(COLUMNS)
        ),
    )
    phases.mark("copy")
    await driver.execute(f"SET LOCAL maintenance_work_mem = '{PG_INDEX_MEMORY}'")
    renames = await _pg_build_keys(driver)
    removed = 0
    if renames is None:
        # The file named a document in two chunks: keep its last row (COPY appends to the fresh
        # heap in file order, so the highest ctid is the latest), then build the keys again.
        status = await driver.execute(
            "DELETE FROM documents_load d USING (SELECT ctid, row_number() OVER ("
            "PARTITION BY issuing_state, number ORDER BY ctid DESC) AS n FROM documents_load) o "
            "WHERE d.ctid = o.ctid AND o.n > 1"
        )
        removed = int(status.split()[-1])
        renames = await _pg_build_keys(driver)
        if renames is None:
            raise StoreError("duplicate keys remained after removing repeated rows")
    phases.mark("index")
    # Statistics travel with the table through the rename: the first batch after the swap is
    # planned on them (without them the batch join's p99 was 50 ms on 10 million records).
    await driver.execute("ANALYZE documents_load")
    phases.mark("analyze")
    await _pg_copy_privileges(driver)
    await _pg_lock_for_swap(driver)
    await driver.execute("DROP TABLE documents")
    await driver.execute("ALTER TABLE documents_load RENAME TO documents")
    for statement in renames:
        await driver.execute(statement)
    phases.mark("swap")
    return total - removed, total


async def _pg_build_keys(driver: Any) -> list[str] | None:
    """Give ``documents_load`` the constraints and indexes of ``documents`` under temporary names;
    returns the statements that give them their real names after the swap, or None when the rows
    break a unique key (nothing is left half-built: a savepoint undoes it)."""
    import asyncpg

    constraints = await driver.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE conrelid = 'documents'::regclass AND contype IN ('p', 'u') ORDER BY conname"
    )
    indexes = await driver.fetch(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) AS def FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'documents'::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
        "ORDER BY c.relname"
    )
    renames: list[str] = []
    try:
        async with driver.transaction():  # a savepoint
            for i, c in enumerate(constraints):
                temp = f"rmas_load_key{i}"
                await driver.execute(f"ALTER TABLE documents_load ADD CONSTRAINT {temp} {c['def']}")
                renames.append(
                    f"ALTER TABLE documents RENAME CONSTRAINT {temp} TO {_pg_ident(c['conname'])}"
                )
            for i, ix in enumerate(indexes):
                temp = f"rmas_load_ix{i}"
                head, _, using = ix["def"].partition(" USING ")
                unique = "UNIQUE " if head.startswith("CREATE UNIQUE") else ""
                await driver.execute(f"CREATE {unique}INDEX {temp} ON documents_load USING {using}")
                renames.append(f"ALTER INDEX {temp} RENAME TO {_pg_ident(ix['relname'])}")
    except asyncpg.UniqueViolationError:
        return None
    return renames


def _pg_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _pg_copy_privileges(driver: Any) -> None:
    """The fresh table gets the owner and the grants of the live one (a read-only role that the
    provider connects as must still be able to read after a reload)."""
    owner = await driver.fetchval(
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'documents'::regclass"
    )
    if owner != await driver.fetchval("SELECT current_user"):
        await driver.execute(f"ALTER TABLE documents_load OWNER TO {_pg_ident(owner)}")
    grants = await driver.fetch(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS who, "
        "a.privilege_type AS what, a.is_grantable AS again "
        "FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a "
        "LEFT JOIN pg_roles r ON r.oid = a.grantee WHERE c.oid = 'documents'::regclass"
    )
    for g in grants:
        option = " WITH GRANT OPTION" if g["again"] else ""
        await driver.execute(f"GRANT {g['what']} ON documents_load TO {g['who']}{option}")


#: How long one attempt to take the swap's exclusive lock may wait: readers that arrive while it
#: waits queue behind it, so a long-running query elsewhere must not stall every lookup.
PG_SWAP_LOCK_WAIT = 0.2
PG_SWAP_LOCK_ATTEMPTS = 300


async def _pg_lock_for_swap(driver: Any) -> None:
    import asyncpg

    for _ in range(PG_SWAP_LOCK_ATTEMPTS):
        try:
            async with driver.transaction():  # a savepoint, which also ends the SET LOCAL
                await driver.execute(
                    f"SET LOCAL lock_timeout = '{int(PG_SWAP_LOCK_WAIT * 1000)}ms'"
                )
                await driver.execute("LOCK TABLE documents IN ACCESS EXCLUSIVE MODE")
            return
        except asyncpg.LockNotAvailableError:
            pass
        await asyncio.sleep(PG_SWAP_LOCK_WAIT)
    raise StoreError("the store stayed busy: could not take the lock to swap in the new records")
