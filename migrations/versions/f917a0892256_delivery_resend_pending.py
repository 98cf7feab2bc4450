"""delivery: resend_pending and resend_requested_by_id (a bulk resend's one manual attempt)

Revision ID: f917a0892256
Revises: 236d8e3a2f44
Create Date: 2026-11-27 15:51:46.705355

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "f917a0892256"
down_revision = "236d8e3a2f44"
branch_labels = None
depends_on = None

FK = "fk_delivery_resend_requested_by_id_user"


def upgrade():
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("resend_pending", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("resend_requested_by_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(FK, "user", ["resend_requested_by_id"], ["id"])


def downgrade():
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_constraint(FK, type_="foreignkey")
        batch_op.drop_column("resend_requested_by_id")
        batch_op.drop_column("resend_pending")
