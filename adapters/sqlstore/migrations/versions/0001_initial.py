"""The first schema: documents keyed by (issuing_state, number), and store_meta.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("issuing_state", sa.String(3), nullable=False),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("document_type", sa.String(1), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("reported_on", sa.Date),
        sa.Column("record_ref", sa.String(64), nullable=False),
        sa.Column("reporting_authority", sa.String(128), nullable=False),
        sa.Column("detail", sa.String(512), nullable=False),
        sa.Column("surname", sa.String(64), nullable=False),
        sa.Column("given_names", sa.String(64), nullable=False),
        sa.Column("birth_date", sa.Date),
        sa.Column("sex", sa.String(1), nullable=False),
        sa.Column("expiry_date", sa.Date),
        sa.UniqueConstraint("issuing_state", "number", name="uq_documents_key"),
    )
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("store_meta")
    op.drop_table("documents")
