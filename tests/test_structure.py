"""The shape of the code a newcomer changes: imports run one way, and no module grows past what one reads at once.

Every import statement of every module under nas/ counts, at module level or inside a function (``from pkg
import mod`` counts as importing ``pkg.mod``): the modules import each other without a cycle, and each part
imports only the parts below it (kernels <- spaces <- evaluators <- search <- exporter <- dashboard and cli).
``nas.errors`` and ``nas.version`` are leaves every part may import; no part imports the root package.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAS = ROOT / "nas"
ORDER = ["kernels", "spaces", "evaluators", "search", "exporter", "dashboard"]  # each imports only those before it
TOP = {"cli": len(ORDER)}  # the command line wires every part: above all of them
LEAVES = {"nas.errors", "nas.version"}


def modules() -> dict[str, Path]:
    out = {}
    for f in NAS.rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


MODULES = modules()


def imports_of(name: str) -> set[str]:
    """The nas modules ``name`` imports, each statement resolved to the module it loads."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for t in targets:
            if t != "nas" and not t.startswith("nas."):
                continue
            while t not in MODULES and "." in t:
                t = t.rsplit(".", 1)[0]
            if t != name:
                out.add(t)
    return out


GRAPH = {name: imports_of(name) for name in MODULES}


def part(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "nas"


def rank(name: str) -> int | None:
    p = part(name)
    return ORDER.index(p) if p in ORDER else TOP.get(p)


def test_the_graph_sees_the_imports_it_should():
    # a check that cannot fail proves nothing: the parser finds the imports known to be there
    assert "nas.spaces.base" in GRAPH["nas.spaces.blocks"]
    assert "nas.search.store.storage" in GRAPH["nas.search.read.results"]
    assert "nas.search.execution.confirm" in GRAPH["nas.search.execution.driver"]  # inside a function
    assert "nas.spaces.activations" in GRAPH["nas.spaces.vocabulary"]  # `from nas.spaces import activations`


def test_no_import_cycle():
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert cycles == []


def test_each_part_imports_only_the_parts_below_it():
    wrong = []
    for name, targets in GRAPH.items():
        if name == "nas" or name in LEAVES:
            continue
        for t in targets:
            if t == "nas":
                wrong.append(f"{name} imports the root package nas")
            elif t in LEAVES or part(t) == part(name):
                continue
            elif rank(t) is None or rank(name) is None or rank(t) >= rank(name):
                wrong.append(f"{name} ({part(name)}) imports {t} ({part(t)})")
    for leaf in LEAVES:
        assert GRAPH[leaf] == set(), f"{leaf} must import nothing of nas"
    assert wrong == []


def test_the_hooks_are_declared_once_and_called_through_the_declaration():
    import torch

    from nas.spaces import hooks
    from nas.spaces.hooks import HOOKS, NasHooks

    assert set(HOOKS) == {"nas_cost", "nas_before_epoch", "nas_aux_loss", "nas_penalty", "nas_prune", "nas_kept",
                          "nas_exit_costs", "nas_interference"}
    assert all(getattr(NasHooks, h, None) is None or getattr(NasHooks, h).__doc__ for h in HOOKS)
    with pytest.raises(ValueError, match="not a nas hook"):
        list(hooks.each(torch.nn.Linear(2, 2), "nas_before_epcoh"))
    # nothing outside hooks.py looks a hook up by a name of its own
    for name, path in MODULES.items():
        if name == "nas.spaces.hooks":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr") and len(
                    node.args) >= 2 and isinstance(node.args[1], ast.Constant) and str(node.args[1].value) in HOOKS:
                pytest.fail(f"{name} looks up {node.args[1].value!r} itself; use nas.spaces.hooks")


def test_the_dashboard_reads_optunas_tables_only_through_its_api():
    import re

    query = re.compile(r"\b(FROM|JOIN|INTO|UPDATE|TABLE)\s+\"?(trials|trial_values|trial_params|trial_\w+|studies|"
                       r"study_\w+|version_info|alembic_version)\b", re.IGNORECASE)
    for path in (NAS / "dashboard").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not query.search(node.value), f"{path.name}: SQL on Optuna's tables: {node.value!r}"


def test_the_dashboard_reads_only_through_the_read_side():
    """One read side: the dashboard queries no table itself (nas's nor Optuna's); nas.search.read does."""
    for path in (NAS / "dashboard").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sqlalchemy"):
                assert [a.name for a in node.names] == ["Engine"], f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("sqlalchemy") for a in node.names), f"{path.name} imports sqlalchemy"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not re.search(r"\bSELECT\b.+\bFROM\b", node.value, re.I | re.S), f"{path.name}: {node.value!r}"


def test_no_module_grows_past_what_one_reads_at_once():
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert sizes["nas.spaces.schema"] < 500  # the space file's generic language; the feature rules are rules.py's
    assert {name: n for name, n in sizes.items() if n > 600} == {}
