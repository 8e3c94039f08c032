"""The change log: one row per document a write changed, read by high-water mark (issue 17).

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: INTEGER on SQLite (its rowid), BIGINT elsewhere.
_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "change_log",
        # AUTOINCREMENT on SQLite: an id is never handed out twice, even once pruned, so a
        # position never goes back.
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("issuing_state", sa.String(3), nullable=False, server_default=""),
        sa.Column("number", sa.String(20), nullable=False, server_default=""),
        sa.Column("recorded_at", sa.Float, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_change_log_recorded_at", "change_log", ["recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_change_log_recorded_at", "change_log")
    op.drop_table("change_log")
