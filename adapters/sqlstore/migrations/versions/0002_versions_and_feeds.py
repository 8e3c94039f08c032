"""Per-record versions and withdrawal tombstones for delta feeds; the applied-feeds journal.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "documents", sa.Column("version", sa.BigInteger, nullable=False, server_default="0")
    )
    op.add_column(
        "documents",
        sa.Column("withdrawn", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "feeds",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("applied_at", sa.String(32), nullable=False),
        sa.Column("changes", sa.Integer, nullable=False),
        sa.Column("stale", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feeds")
    op.drop_column("documents", "withdrawn")
    op.drop_column("documents", "version")
