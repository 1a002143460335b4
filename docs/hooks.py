"""MkDocs hook: the space file's key tables, generated from the fields' declarations (``nas.spaces.arch``).

A page writes ``<!-- nas:keys space -->`` or ``<!-- nas:keys train -->`` where the table goes; every key of
that section is a row: its type, the values it takes (a registry's names, its names or its bounds), its
default, when it applies, and its one-line meaning, all read from its ``key()`` declaration, so the table
cannot disagree with the code.
"""

from __future__ import annotations

import dataclasses
import re

MARK = re.compile(r"<!-- nas:keys (space|train) -->")


def _values(k, kind: str) -> str:
    from nas.spaces import vocabulary

    if k.registry is not None:
        return ", ".join(f"`{n}`" for n in getattr(vocabulary, k.registry))
    if k.names:
        return ", ".join(f"`{n}`" for n in k.names)
    return k.expected_text(kind).replace("|", "\\|")


def table(section: str) -> str:
    from nas.spaces.arch import ArchSpec, TrainSpec

    cls = ArchSpec if section == "space" else TrainSpec
    rows = ["| key | type | values | default | applies | meaning |", "|---|---|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        k = f.metadata["key"]
        if not k.in_space:
            continue
        kind = str(f.type).replace("<class '", "").rstrip("'>")
        default = f"`{f.default!r}`".replace("'", "") if f.default is not dataclasses.MISSING else "-"
        notes = [k.needs] if k.needs else []
        if k.training_only:
            notes.append("training only")
        rows.append(f"| `{f.name}` | {kind} | {_values(k, kind)} | {default} | {'; '.join(notes) or 'always'} | "
                    f"{k.meaning.replace('|', chr(92) + '|')} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return MARK.sub(lambda m: table(m.group(1)), markdown)
