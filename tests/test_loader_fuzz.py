"""Random documents fed to the space loader: a NasInputError or a valid space, never anything else."""

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.errors import NasInputError
from nas.spaces import parse_space

KEYS = ["name", "task", "dataset", "kind", "objectives", "space", "train", "search", "lift", "lift_width",
        "hidden_width", "depth", "activation", "norm", "epochs", "lr", "int", "float", "choice", "value", "log",
        "step", "when", "sampler", "trials", "workers", "seed", "accuracy", "params", "digits", "x"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.sampled_from(KEYS + ["relu", "none", "fixed_random", "maximize", "npz:x.npz"]),
                    st.text(max_size=8))
docs = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                    st.dictionaries(st.sampled_from(KEYS), kids, max_size=5)),
                    max_leaves=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs)
def test_random_documents_never_crash_the_loader(doc):
    text = yaml.safe_dump(doc)
    try:
        parse_space(text, "fuzz.yaml")
    except NasInputError as exc:
        assert str(exc).startswith("fuzz.yaml")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_text_never_crashes_the_loader(text):
    try:
        parse_space(text, "fuzz.yaml")
    except NasInputError as exc:
        assert str(exc).startswith("fuzz.yaml")


VALID = yaml.safe_load(
    "task: {dataset: digits}\n"
    "space:\n"
    "  lift: [fixed_random, none]\n"
    "  lift_width: {int: [64, 128], log: true, when: {lift: fixed_random}}\n"
    "  hidden_width: {int: [8, 64], step: 8}\n"
    "  activation: {choice: [relu, gelu], when: {lift: [none]}}\n"
    "train: {lr: {float: [0.001, 0.01]}, epochs: 2}\n"
    "search: {sampler: tpe, trials: 3}\n"
)


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, path + (i,))


def _replace(node, path, value):
    if not path:
        return value
    import copy

    node = copy.deepcopy(node)
    target = node
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return node


ALL_PATHS = list(_paths(VALID))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(ALL_PATHS), docs)
def test_one_wrong_value_in_a_valid_document(path, value):
    text = yaml.safe_dump(_replace(VALID, path, value))
    try:
        parse_space(text, "fuzz.yaml")
    except NasInputError as exc:
        assert str(exc).startswith("fuzz.yaml")
