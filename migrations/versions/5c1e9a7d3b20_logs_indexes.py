"""attempt: drop the indexes no Logs or API query needs; message: index mobile

Revision ID: 5c1e9a7d3b20
Revises: 9b02c9356833
Create Date: 2026-11-30 05:00:00

The Logs page orders by (started_at, id), so (account_id, id) and (endpoint_id, id) served
nothing; a message id search now goes through event.message_id and delivery.event_id. The
API's delivery listing and the Logs page's queued rows find a mobile's deliveries through
message.mobile.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "5c1e9a7d3b20"
down_revision = "9b02c9356833"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_attempt_account_id_id")
        batch_op.drop_index("ix_attempt_endpoint_id_id")
        batch_op.drop_index("ix_attempt_message_started")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index("ix_message_mobile", ["mobile"], unique=False)


def downgrade():
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_mobile")
    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.create_index(
            "ix_attempt_message_started", ["message_id", "started_at", "id"], unique=False
        )
        batch_op.create_index("ix_attempt_endpoint_id_id", ["endpoint_id", "id"], unique=False)
        batch_op.create_index("ix_attempt_account_id_id", ["account_id", "id"], unique=False)
