"""nas's own tables, beside Optuna's in the same database (SQLAlchemy 2.x ORM).

Optuna keeps the study (trials, parameters, values); these tables keep what
Optuna has no place for: the space file a study was run from, each
candidate's ArchSpec, learning curve, wall time, weights file and failure
reason. Nothing here is ever pickled: structured values are JSON.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Run(Base):
    """One invocation of ``nas run`` on a study."""

    __tablename__ = "nas_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_name: Mapped[str] = mapped_column(String(128), index=True)
    space_text: Mapped[str] = mapped_column(Text)  # the space file as written
    space_sha: Mapped[str] = mapped_column(String(64))
    sampler: Mapped[str] = mapped_column(String(32))
    workers: Mapped[int] = mapped_column(Integer)
    target_trials: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="RUNNING")  # RUNNING | FINISHED | INTERRUPTED | FAILED
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    nas_version: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)


class Candidate(Base):
    """One Optuna trial of a study, as nas evaluated it."""

    __tablename__ = "nas_candidates"
    __table_args__ = (
        UniqueConstraint("study_name", "trial_number", name="uq_nas_candidates_trial"),
        Index("ix_nas_candidates_eval_key", "arch_id", "train_key", "task_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("nas_runs.id"), index=True)
    study_name: Mapped[str] = mapped_column(String(128), index=True)
    trial_number: Mapped[int] = mapped_column(Integer)
    trial_id: Mapped[int] = mapped_column(Integer)  # Optuna's trial_id
    arch_id: Mapped[str] = mapped_column(String(32))
    train_key: Mapped[str] = mapped_column(String(32))
    task_key: Mapped[str] = mapped_column(String(300))  # dataset and kind: what the result depends on
    arch: Mapped[dict] = mapped_column(JSON)  # ArchSpec.to_json()
    train: Mapped[dict] = mapped_column(JSON)  # TrainSpec.to_json()
    values: Mapped[dict] = mapped_column(JSON)  # every sampled or fixed parameter of the space file
    state: Mapped[str] = mapped_column(String(16))  # RUNNING | COMPLETE | FAIL | PRUNED
    objectives: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # all measured metrics
    curve: Mapped[list | None] = mapped_column(JSON, nullable=True)  # per epoch: epoch, train_loss, val_accuracy
    wall_time_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    epochs_trained: Mapped[int | None] = mapped_column(Integer, nullable=True)
    weights_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    reused_from: Mapped[int | None] = mapped_column(Integer, nullable=True)  # Candidate.id whose result was reused
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Progress(Base):
    """The state of a study's search after each candidate that finished training (or was reused).

    What a search-quality comparison needs: how good the front was (hypervolume,
    see ``nas.search.quality``) after how much training (epochs, summed over
    every candidate trained so far, complete or stopped early).
    """

    __tablename__ = "nas_progress"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_name: Mapped[str] = mapped_column(String(128), index=True)
    trial_number: Mapped[int] = mapped_column(Integer)  # the candidate that just finished
    n_complete: Mapped[int] = mapped_column(Integer)
    epochs_total: Mapped[int] = mapped_column(Integer)
    hypervolume: Mapped[float | None] = mapped_column(Float, nullable=True)  # None until the reference point is set
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Confirmation(Base):
    """One more training of a complete candidate with another seed (``nas confirm``; ``nas.search.execution.confirm``).

    The candidate's architecture, training settings and task are its trial's; only ``train.seed`` differs
    (initialisation and batch order; the splits are the same). Its objectives hold the validation score
    (``accuracy`` or ``psnr``), the test score (``test_accuracy`` ...), and what else the evaluator measured.
    """

    __tablename__ = "nas_confirmations"
    __table_args__ = (UniqueConstraint("study_name", "trial_number", "seed", name="uq_nas_confirmations_seed"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_name: Mapped[str] = mapped_column(String(128), index=True)
    trial_number: Mapped[int] = mapped_column(Integer)  # the confirmed candidate
    seed: Mapped[int] = mapped_column(Integer)  # train.seed of this training
    train_key: Mapped[str] = mapped_column(String(32))  # the training settings' hash with the evaluator version
    state: Mapped[str] = mapped_column(String(16))  # RUNNING | COMPLETE | FAIL
    objectives: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    curve: Mapped[list | None] = mapped_column(JSON, nullable=True)
    wall_time_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
