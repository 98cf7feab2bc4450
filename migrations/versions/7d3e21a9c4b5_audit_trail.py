"""audit_entry: the audit trail (who changed what, when, from where)

Revision ID: 7d3e21a9c4b5
Revises: 039e26069b1f
Create Date: 2026-12-02 09:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "7d3e21a9c4b5"
down_revision = "039e26069b1f"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("actor_type", sa.String(length=8), nullable=False),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=45), nullable=True),
        sa.Column("target_type", sa.String(length=16), nullable=True),
        sa.Column("target_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_entry_account_id", "audit_entry", ["account_id", "id"])


def downgrade():
    op.drop_index("ix_audit_entry_account_id", table_name="audit_entry")
    op.drop_table("audit_entry")
