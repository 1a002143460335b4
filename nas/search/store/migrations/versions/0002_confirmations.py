"""nas confirm's table: each extra training of a candidate with another seed (``models.Confirmation``).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nas_confirmations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_name", sa.String(128), nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("train_key", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("objectives", sa.JSON(), nullable=True),
        sa.Column("curve", sa.JSON(), nullable=True),
        sa.Column("wall_time_s", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_name", "trial_number", "seed", name="uq_nas_confirmations_seed"),
    )
    op.create_index("ix_nas_confirmations_study_name", "nas_confirmations", ["study_name"])


def downgrade() -> None:
    op.drop_table("nas_confirmations")
