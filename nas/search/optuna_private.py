"""The only place nas reaches into Optuna's private API, and why.

nas records a reason with every failed or stopped trial (``fail_reason``, the system attribute Optuna's own
``_optimize`` loop writes for a failed trial, so ``optuna-dashboard`` shows it) and keeps Optuna's trial id
beside its own candidate row. Optuna (5.x) has no public call for either: ``Study.tell`` takes no reason,
``Trial`` and ``FrozenTrial`` expose no ``trial_id``, and a study's storage is ``Study._storage``. Each
function here is one private call behind a plain name; if Optuna changes them, this file is the one to mend.
"""

from __future__ import annotations

import optuna


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """Optuna's storage id of ``trial`` (unique in the database, unlike its number)."""
    return trial._trial_id


def set_fail_reason(study: optuna.Study, trial: optuna.Trial | optuna.trial.FrozenTrial, reason: str) -> None:
    """Record why ``trial`` failed or was stopped, where Optuna keeps its own failure reasons."""
    study._storage.set_trial_system_attr(trial._trial_id, "fail_reason", reason)

