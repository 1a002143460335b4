"""``nas export``: one candidate of a study as a standalone PyTorch module.

``export_candidate`` picks a candidate of a study (``--trial N``, or
``--pick METRIC`` / ``--pick knee``) and ``export_model`` writes a folder
that needs only PyTorch:

- ``model.py``: readable classes for exactly the blocks the architecture uses,
  a safetensors reader and ``load(directory)``; no ``nas`` import;
- ``weights.safetensors``: the trained tensors (a fixed random lift is
  regenerated from its seed, or stored with ``store_lift=True``);
- ``arch.json``: the ArchSpec, the task, the training settings, the measured
  objectives and where the candidate came from;
- ``README.md``: a model card.

``model.py`` is generated from a fixed set of snippets; the only varying parts
are integer literals of the ArchSpec (checked to be ints) and choices among the
snippets by block name (checked against the registries and the snippet
tables). No string a user wrote ever reaches the code. Every export is checked
before it is put in place: the exported model's outputs must equal
(``torch.equal``) nas's own model's on random inputs, and
``torch.export.export`` is tried on it. The folder is written next to
``out_dir`` under a temporary name and renamed into place at the end, so a
failed export leaves nothing behind.

The parts: ``pick`` (which candidate, from the store), ``write`` (the folder, checked), ``source`` (model.py),
``card`` (README.md), ``snippets`` (the blocks' text, until model.py is copied from nas's own classes).
"""

from nas.exporter.card import KNEE, model_card
from nas.exporter.pick import best_by, export_candidate, knee
from nas.exporter.source import check_spec, describe, model_source
from nas.exporter.write import FORMAT, ExportMeta, export_model

__all__ = ["FORMAT", "KNEE", "ExportMeta", "best_by", "check_spec", "describe", "export_candidate", "export_model",
           "knee", "model_card", "model_source"]
