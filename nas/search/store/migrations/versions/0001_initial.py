"""nas's tables as nas 0.1.0 created them (``create_all``, before they were versioned): runs, candidates, progress.

A database made before versioning holds these tables already, or some of them (``nas_progress`` came later
within 0.1.0): each table is created only where it is missing, with its indexes, so such a database is
upgraded, not re-created.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    have = set(sa.inspect(op.get_bind()).get_table_names())
    if "nas_runs" not in have:
        _runs()
    if "nas_candidates" not in have:
        _candidates()
    if "nas_progress" not in have:
        _progress()


def _runs() -> None:
    op.create_table(
        "nas_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_name", sa.String(128), nullable=False),
        sa.Column("space_text", sa.Text(), nullable=False),
        sa.Column("space_sha", sa.String(64), nullable=False),
        sa.Column("sampler", sa.String(32), nullable=False),
        sa.Column("workers", sa.Integer(), nullable=False),
        sa.Column("target_trials", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("nas_version", sa.String(32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_nas_runs_study_name", "nas_runs", ["study_name"])


def _candidates() -> None:
    op.create_table(
        "nas_candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("study_name", sa.String(128), nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("arch_id", sa.String(32), nullable=False),
        sa.Column("train_key", sa.String(32), nullable=False),
        sa.Column("task_key", sa.String(300), nullable=False),
        sa.Column("arch", sa.JSON(), nullable=False),
        sa.Column("train", sa.JSON(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("objectives", sa.JSON(), nullable=True),
        sa.Column("curve", sa.JSON(), nullable=True),
        sa.Column("wall_time_s", sa.Float(), nullable=True),
        sa.Column("epochs_trained", sa.Integer(), nullable=True),
        sa.Column("weights_path", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("reused_from", sa.Integer(), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["nas_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_name", "trial_number", name="uq_nas_candidates_trial"),
    )
    op.create_index("ix_nas_candidates_study_name", "nas_candidates", ["study_name"])
    op.create_index("ix_nas_candidates_run_id", "nas_candidates", ["run_id"])
    op.create_index("ix_nas_candidates_eval_key", "nas_candidates", ["arch_id", "train_key", "task_key"])


def _progress() -> None:
    op.create_table(
        "nas_progress",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_name", sa.String(128), nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=False),
        sa.Column("n_complete", sa.Integer(), nullable=False),
        sa.Column("epochs_total", sa.Integer(), nullable=False),
        sa.Column("hypervolume", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_nas_progress_study_name", "nas_progress", ["study_name"])


def downgrade() -> None:
    op.drop_table("nas_progress")
    op.drop_table("nas_candidates")
    op.drop_table("nas_runs")
