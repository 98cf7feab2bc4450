"""attempt.signature: the X-TalkNTalk-Signature an attempt carried (the Logs show it, not one
made with the endpoint's secret of today)

Revision ID: 6905f2775d92
Revises: 5c1e9a7d3b20
Create Date: 2026-11-30 06:15:10.156755

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "6905f2775d92"
down_revision = "5c1e9a7d3b20"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signature", sa.String(length=80), nullable=True))


def downgrade():
    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.drop_column("signature")
