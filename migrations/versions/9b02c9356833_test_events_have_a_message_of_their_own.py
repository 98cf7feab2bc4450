"""message.is_test: a test event has a message of its own (a unique data.id, its status)

Revision ID: 9b02c9356833
Revises: f917a0892256
Create Date: 2026-11-30 04:33:04.392962

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "9b02c9356833"
down_revision = "f917a0892256"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_test", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade():
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("is_test")
