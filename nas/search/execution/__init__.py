"""The run: the driver (``driver``: ask, freeze, dispatch, record), the Ray Tune workers (``dispatch``), each
end written to SQL then Optuna (``recorder``), the front and hypervolume after every candidate (``history``),
multi-objective early stopping (``pruning``), the samplers (``samplers``), the live display (``progress``) and
``nas confirm`` (``confirm``: more seeds for chosen candidates)."""
