"""``nas export``: one candidate of a study as a standalone PyTorch module.

``export_candidate`` picks a candidate of a study (``--trial N``, or
``--pick METRIC`` / ``--pick knee``) and ``export_model`` writes a folder
that needs only PyTorch:

- ``model.py``: nas's own classes for exactly the blocks the architecture
  uses, ``build()``, a safetensors reader and ``load(directory)``; no ``nas``
  import;
- ``weights.safetensors``: the trained tensors (a fixed random lift is
  regenerated from its seed, or stored with ``store_lift=True``);
- ``arch.json``: the ArchSpec, the task, the training settings, the measured
  objectives and where the candidate came from;
- ``README.md``: a model card.

``model.py`` is nas's own code: the source of exactly the classes and
functions the architecture uses, copied from nas/spaces (``source``, with
``nas.exporter.portable``), and ``build()``, the architecture's plan
(``nas.spaces.builder.plan``) written out with its integers (checked to be
ints). No string a user wrote ever reaches the code. Every export is checked
before it is put in place: the exported model's outputs must equal
(``torch.equal``) nas's own model's on random inputs, and
``torch.export.export`` is tried on it. The folder is written next to
``out_dir`` under a temporary name and renamed into place at the end, so a
failed export leaves nothing behind.

The parts: ``pick`` (which candidate, from the store), ``write`` (the folder, checked), ``source`` (model.py),
``runtime`` (model.py's loader, copied into it), ``card`` (README.md).
"""

from nas.exporter.card import KNEE, model_card
from nas.exporter.pick import best_by, export_candidate, knee
from nas.exporter.source import check_spec, model_source
from nas.exporter.write import FORMAT, ExportMeta, export_model

__all__ = ["FORMAT", "KNEE", "ExportMeta", "best_by", "check_spec", "export_candidate", "export_model",
           "knee", "model_card", "model_source"]
