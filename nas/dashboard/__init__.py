"""The Streamlit dashboard (reads the store, draws Pareto fronts, offers export).

Not built yet: see the project's dashboard issue. Until then ``nas show`` and
the Optuna dashboard (which opens the same database) show a study.
"""
