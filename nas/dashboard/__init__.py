"""The Streamlit dashboard: ``nas dashboard`` serves ``app.py``, which draws a study's Pareto fronts, its
progress, what matters, its candidates (with their export) and comparisons; ``data.py`` is its read-only layer
over the store (SQLite opened read-only, so a running ``nas run`` is never blocked)."""
