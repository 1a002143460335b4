"""The read side: what every reader of a database uses (``nas ls``, ``nas show``, ``nas.trials``, ``nas
compare``, the dashboard, the exporter's pick): ``results`` (studies, trials, confirmations, comparisons),
``intervals`` (seeds' statistics and the significance marking) and ``format`` (readable units). Never writes."""
