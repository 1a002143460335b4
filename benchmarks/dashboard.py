"""Render time of the dashboard page for a study of 10,000 candidates.

Builds a SQLite database with one study through Optuna (directions, metric names)
and 10,000 rows in nas's candidate table (what the page reads by default: the
"What matters" tab, which loads Optuna's trials, is off until asked for), then
renders the page with Streamlit's AppTest: once on a small study to import
everything, then the large study cold (no cached data). The figure is the
wall time of that second run: the script a server runs for a page load.

    python benchmarks/dashboard.py [--candidates 10000]

Last line: ``render_s=… candidates=… target_s=3 charts=… warmup_s=…``.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

APP = str(Path(__file__).resolve().parent.parent / "nas" / "dashboard" / "app.py")


def build(url: str, study: str, n: int, seed: int = 0) -> None:
    import optuna

    import numpy as np

    from nas.search import quality
    from nas.search.store.models import Candidate, Progress, Run
    from nas.search.store.storage import Store, optuna_storage

    store = Store(url)
    s = optuna.create_study(study_name=study, storage=optuna_storage(url),
                            directions=["maximize", "minimize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.set_metric_names(["accuracy", "params", "bandwidth"])
    rng = random.Random(seed)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with store.session() as session:
        run = Run(study_name=study, space_text="", space_sha="", sampler="random", workers=4, target_trials=n,
                  host="bench", pid=0, nas_version="bench", state="FINISHED")
        session.add(run)
        session.flush()
        rows = []
        for i in range(n):
            lift = rng.choice(["fixed_random", "learned", "none"])
            arch = {"d_in": 784, "d_out": 10, "lift": lift, "lift_width": rng.randint(256, 2048) if lift != "none"
                    else 784, "hidden_width": rng.randint(16, 512), "depth": rng.randint(1, 4),
                    "activation": rng.choice(["relu", "gelu", "silu"]), "norm": "batchnorm", "lift_seed": 0}
            params = float(arch["lift_width"] * arch["hidden_width"] * 2 * arch["depth"])
            failed = rng.random() < 0.05
            rows.append(dict(
                run_id=run.id, study_name=study, trial_number=i, trial_id=i, arch_id=f"{i:016x}", train_key="t",
                task_key="classification|mnist5k", arch=arch, train={"epochs": 10}, values={k: v for k, v in
                arch.items() if k not in ("d_in", "d_out")}, state="FAIL" if failed else "COMPLETE",
                objectives={"params": params, "bandwidth": params * 4.1,
                            **({} if failed else {"accuracy": min(0.99, 0.8 + 0.03 * rng.random() +
                                                                  0.02 * (params ** 0.1) / 5)})},
                curve=[{"epoch": e, "val_accuracy": 0.8, "train_loss": 0.5} for e in range(1, 11)],
                wall_time_s=rng.uniform(1, 20), error="OutOfMemoryError: simulated" if failed else None,
                created_at=t0 + timedelta(seconds=3 * i), finished_at=t0 + timedelta(seconds=3 * i + 2)))
        session.execute(Candidate.__table__.insert(), rows)
        # the history nas run stores after each candidate (the Progress tab draws it): its hypervolume
        done = [[r["objectives"][m] for m in ("accuracy", "params", "bandwidth")] for r in rows if r["state"] == "COMPLETE"]
        dirs = ["maximize", "minimize", "minimize"]
        hv = quality.history(np.array(done), dirs, quality.derive_reference(np.array(done), dirs))
        session.execute(Progress.__table__.insert(), [
            dict(study_name=study, trial_number=r["trial_number"], n_complete=k + 1, epochs_total=10 * (k + 1),
                 hypervolume=float(v), created_at=r["finished_at"])
            for k, (r, v) in enumerate(zip([r for r in rows if r["state"] == "COMPLETE"], hv))])
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=10_000)
    args = ap.parse_args()
    from streamlit.testing.v1 import AppTest

    with tempfile.TemporaryDirectory(prefix="nas-dash-") as tmp:
        small, large = f"sqlite:///{tmp}/small.db", f"sqlite:///{tmp}/large.db"
        build(small, "small", 50)
        t = time.perf_counter()
        build(large, "large", args.candidates)
        built = time.perf_counter() - t
        os.environ["NAS_STORAGE"] = small
        t = time.perf_counter()
        AppTest.from_file(APP, default_timeout=300).run()
        warm = time.perf_counter() - t
        os.environ["NAS_STORAGE"] = large
        t = time.perf_counter()
        at = AppTest.from_file(APP, default_timeout=300).run()
        render = time.perf_counter() - t
        assert not at.exception, [e.value for e in at.exception]
        charts = len(at.get("plotly_chart"))
        rows = len(at.dataframe[0].value)
    print(f"database of {args.candidates} candidates built in {built:.1f} s")
    print(f"first render (imports, a 50-candidate study): {warm:.2f} s")
    print(f"render of the {args.candidates}-candidate study, cold data: {render:.2f} s "
          f"({charts} charts, a table of {rows} rows)")
    print(f"render_s={render:.2f} candidates={args.candidates} target_s=3 charts={charts} warmup_s={warm:.2f}")


if __name__ == "__main__":
    main()
