"""A study's search history: the front after every finished candidate, its hypervolume and the training spent.

``History`` keeps the objective values of the complete candidates so far and the epochs trained (reused
candidates cost none), fixes the hypervolume's reference point once (``nas.search.quality``: the space
file's, or derived from the first candidates and kept with the study), and writes one ``nas_progress`` row
per finished candidate.
"""

from __future__ import annotations

import numpy as np
import optuna
import sqlalchemy as sa

from nas.search import quality
from nas.search.store.models import Candidate, Progress
from nas.search.store.storage import Store


_INSERT = sa.insert(Progress.__table__)  # a progress row (Core: no ORM objects, built once)


class History:
    def __init__(self, store: Store, study: optuna.Study, study_name: str, metrics: list[str],
                 directions: list[str], reference_setting: dict | None):
        self.store, self.study, self.study_name = store, study, study_name
        self.metrics, self.directions, self.reference_setting = metrics, directions, reference_setting
        with store.session() as s:  # a resumed study goes on counting
            rows = s.execute(
                sa.select(Candidate.state, Candidate.objectives, Candidate.epochs_trained, Candidate.reused_from)
                .where(Candidate.study_name == study_name, Candidate.state.in_(("COMPLETE", "PRUNED")))
                .order_by(Candidate.finished_at, Candidate.id)
            ).all()
        self.values = [[float(obj[m]) for m in metrics] for state, obj, _, _ in rows
                       if state == "COMPLETE" and obj and all(m in obj for m in metrics)]
        self.front = self._nondominated(self.values)  # the hypervolume's points: the front of self.values
        self._hv: float | None = None  # the front's hypervolume, once computed (None: to compute)
        self.epochs_total = sum(e or 0 for _, _, e, reused in rows if reused is None)
        ref = study.user_attrs.get(quality.REFERENCE_ATTR)
        self.reference = [float(ref[m]) for m in metrics] if ref else None

    def _nondominated(self, values: list[list[float]]) -> list[list[float]]:
        import moocore

        if not values:
            return []
        keep = moocore.is_nondominated(np.array(values), maximise=[d == "maximize" for d in self.directions],
                                       keep_weakly=True)
        return [v for v, k in zip(values, keep) if k]

    def _hypervolume(self) -> float | None:
        """The hypervolume of every complete candidate's values, computed on their front alone (the same
        number: dominated points add no volume), which is kept up to date as candidates finish instead of
        sorting every value of the study at each end."""
        if self.reference is None or not self.front:
            return None
        if self._hv is None:  # computed again only when the front changed (a dominated candidate adds nothing)
            self._hv = quality.hypervolume(np.array(self.front), self.directions, self.reference)
        return self._hv

    def record(self, trial_number: int, n_complete: int, values: list[float] | None, epochs: int):
        """After a candidate finished: its values (None: stopped early) join the front and the compute; the
        reference point is fixed as soon as it can be (the study's attribute written at once). Returns the
        writing of its progress row with the hypervolume (and, when the reference was just fixed, the earlier
        rows' hypervolume), for the caller's transaction of the same end."""
        if values is not None:
            self.values.append(values)
            front = self._nondominated(self.front + [values])
            if front[-1] is values:  # kept: the front changed, its volume with it (a dominated point changes neither)
                self._hv = None
            self.front = front
        self.epochs_total += epochs
        backfill = False
        if self.reference is None:
            ref = quality.reference_of(self.reference_setting, self.metrics, np.array(self.values), self.directions)
            if ref is not None:
                self.reference = [float(r) for r in ref]
                self.study.set_user_attr(quality.REFERENCE_ATTR, dict(zip(self.metrics, self.reference)))
                backfill = True
        row = dict(study_name=self.study_name, trial_number=trial_number, n_complete=n_complete,
                   epochs_total=self.epochs_total, hypervolume=self._hypervolume())
        curve = quality.history(np.array(self.values), self.directions, self.reference) if backfill else []

        def write(s) -> None:
            s.execute(_INSERT, row)
            for n, value in enumerate(curve, start=1):
                s.execute(sa.update(Progress).where(Progress.study_name == self.study_name, Progress.n_complete == n,
                                                    Progress.hypervolume.is_(None)).values(hypervolume=value))
        return write

    def record_recovered(self, numbers: list[int], n_complete: int) -> None:
        """A row for each trial an earlier run finished but Optuna heard of only now (already in the front
        and the training totals, which were read from nas's table)."""
        hv = self._hypervolume()
        with self.store.session() as s:
            for number in numbers:
                s.add(Progress(study_name=self.study_name, trial_number=number, n_complete=n_complete,
                               epochs_total=self.epochs_total, hypervolume=hv))
