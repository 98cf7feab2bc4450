"""inspector and captured_request: the built-in request inspector

Revision ID: 8f52c0b7e613
Revises: 7d3e21a9c4b5
Create Date: 2026-11-30 08:40:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "8f52c0b7e613"
down_revision = "7d3e21a9c4b5"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "inspector",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("delay_ms", sa.Integer(), nullable=False),
        sa.Column("fail_first", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoint.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token"),
    )
    with op.batch_alter_table("inspector", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inspector_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_inspector_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "captured_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inspector_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("query", sa.String(length=2048), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("remote_addr", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("signature", sa.String(length=16), nullable=True),
        sa.Column("event_key", sa.String(length=80), nullable=True),
        sa.Column("repeat", sa.String(length=16), nullable=True),
        sa.Column("answered_status", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["inspector_id"], ["inspector.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("captured_request", schema=None) as batch_op:
        batch_op.create_index("ix_captured_request_inspector", ["inspector_id", "id"], unique=False)


def downgrade():
    with op.batch_alter_table("captured_request", schema=None) as batch_op:
        batch_op.drop_index("ix_captured_request_inspector")
    op.drop_table("captured_request")
    with op.batch_alter_table("inspector", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inspector_expires_at"))
        batch_op.drop_index(batch_op.f("ix_inspector_account_id"))
    op.drop_table("inspector")
