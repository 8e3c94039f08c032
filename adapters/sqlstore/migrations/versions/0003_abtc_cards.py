"""APEC Business Travel Cards: the complete registry of the cards an economy issued.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "abtc_cards",
        sa.Column("home_economy", sa.String(3), nullable=False),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("passport_number", sa.String(20), nullable=False, server_default=""),
        sa.Column("passport_issuing_state", sa.String(3), nullable=False, server_default=""),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("expiry_date", sa.Date),
        sa.Column("pre_cleared", sa.String(256), nullable=False, server_default=""),
        sa.Column("record_ref", sa.String(64), nullable=False, server_default=""),
        sa.Column("reporting_authority", sa.String(128), nullable=False, server_default=""),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("withdrawn", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("home_economy", "number", name="uq_abtc_cards_key"),
    )


def downgrade() -> None:
    op.drop_table("abtc_cards")
