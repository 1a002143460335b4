"""The feature rules of a space file: what its keys must hold together, beyond each key's own declaration.

``check_document`` runs while a space file is parsed (the objectives and the task's kind, the reference point,
the sat options and the held-out splits, a lift's width, and the rules of FPE's groups split, the conv mixer's
kernel range, activation scopes, structured weights with FPE and early exit on image tasks); ``check_task``
once the task is loaded (patches that tile it, ranks and monarch blocks that fit its widths, feature groups).
Each error names the key and its line (``errors.add``), as every error of the space file does.
"""

from __future__ import annotations

from pathlib import Path

from nas.errors import NasInputError
from nas.spaces.arch import SCOPED_ACTIVATIONS, SPACE_DEFAULTS

IMAGE_KINDS = ("denoise", "superres", "generative_classification")  # the task kinds scored by psnr


def default_objectives(kind: str) -> dict[str, str]:
    """A space file's objectives when it names none: the task's score (accuracy, or psnr for an image kind),
    params and bandwidth."""
    return {"psnr" if kind in IMAGE_KINDS else "accuracy": "maximize", "params": "minimize", "bandwidth": "minimize"}
DATASETS = ("digits", "mnist5k", "sat")  # the bundled datasets (besides npz:PATH)


def seconds_of(value) -> float:
    """A duration in seconds: a number (seconds), or text such as ``90``, ``90s``, ``30m``, ``2h``, ``1h30m``,
    ``1d``; ValueError saying what is expected."""
    import re

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"a duration must be positive, found {value!r}")
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    if not text or re.fullmatch(r"(\d+(\.\d+)?[dhms]?)+", text) is None:
        raise ValueError(f"not a duration: {value!r}; expected seconds or e.g. 90s, 30m, 2h, 1h30m")
    total = sum(float(n) * {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}[u]
                for n, u in re.findall(r"(\d+(?:\.\d+)?)([dhms]?)", text))
    if total <= 0:
        raise ValueError(f"a duration must be positive, found {value!r}")
    return total


def check_document(doc, labels: dict, errors, base_dir: Path | None = None) -> None:
    """The rules between the keys of a parsed space file ``doc`` (its parameters by label: ``labels``; an npz
    path relative to ``base_dir``); each broken one is added to ``errors``."""
    if doc.search.timeout is not None:
        try:
            seconds_of(doc.search.timeout)
        except ValueError as exc:
            errors.add(("search", "timeout"), str(exc).split(";")[0], found=doc.search.timeout,
                       expected="seconds, or a duration such as 90s, 30m, 2h, 1h30m")
    dataset = doc.task.dataset
    if dataset.startswith("npz:"):
        npz = Path(dataset[4:]).expanduser()
        if not npz.is_absolute() and base_dir is not None:
            npz = base_dir / npz
        if not npz.is_file():
            errors.add(("task", "dataset"), f"no such npz file: {npz}", found=dataset)
    elif dataset not in DATASETS:
        errors.add(("task", "dataset"), "unknown dataset", found=dataset,
                   expected="digits, mnist5k, sat or npz:PATH", choices=DATASETS)
    if not doc.objectives:
        errors.add(("objectives",), "at least one objective is needed", found={},
                   expected="e.g. {accuracy: maximize, params: minimize}")
    else:
        score = next(iter(default_objectives(doc.task.kind)))
        other = "accuracy" if score == "psnr" else "psnr"
        if score not in doc.objectives:
            errors.add(("objectives",), f"{score} must be one of the objectives of a {doc.task.kind} task",
                       found=list(doc.objectives), expected=f"e.g. {{{score}: maximize, params: minimize}}")
        elif other in doc.objectives:
            errors.add(("objectives", other), f"a {doc.task.kind} task is not scored by {other}",
                       found=other, expected=score)
    ref = doc.search.reference
    if ref is not None and set(ref) != set(doc.objectives):
        errors.add(("search", "reference"), "the reference point needs one value for each objective, no more",
                   found=sorted(ref), expected=str(sorted(doc.objectives)))
    if doc.task.sat is not None and dataset != "sat":
        errors.add(("task", "sat"), "sat options belong to dataset sat", found=dataset, expected="dataset: sat")
    if doc.task.layout is not None and not dataset.startswith("npz:"):
        errors.add(("task", "layout"), "a layout belongs to an npz dataset's images (the others have theirs)",
                   found=dataset, expected="dataset: npz:PATH")
    sat = doc.task.sat
    if sat is not None and sat.disjoint and sat.clauses * sat.literals > sat.variables:
        errors.add(("task", "sat", "disjoint"), "disjoint clauses need clauses × literals ≤ variables",
                   found=f"{sat.clauses} × {sat.literals} = {sat.clauses * sat.literals} > {sat.variables} variables",
                   expected="fewer clauses or literals, or more variables")
    if doc.task.test + doc.task.validation >= 1:
        errors.add(("task", "validation" if "validation" in doc.task.model_fields_set else "test"),
                   "task.test and task.validation together must leave samples to train on (their sum below 1)",
                   found=f"test {doc.task.test:g} + validation {doc.task.validation:g} = "
                         f"{doc.task.test + doc.task.validation:g}",
                   expected="fractions in (0, 1) summing to less than 1, e.g. test: 0.15, validation: 0.15")
    if dataset == "sat" and doc.task.kind != "classification":
        errors.add(("task", "kind"), "the sat dataset is a classification task", found=doc.task.kind,
                   expected="classification")
    lift = labels.get("lift")
    lift_kinds = lift.values() if lift is not None else (SPACE_DEFAULTS["lift"],)
    can_lift = any(v != "none" for v in lift_kinds)
    if can_lift and "lift_width" not in doc.space:
        errors.add(("space", "lift"), "a lift other than none needs space.lift_width (the width d_z)",
                   found=list(lift_kinds), expected="a lift_width entry, e.g. {int: [64, 1024], log: true}")
    width = labels.get("lift_width")
    if width is not None and "lift" in width.when:
        uncovered = [v for v in lift_kinds if v != "none" and v not in width.when["lift"]]
        if uncovered:
            errors.add(("space", "lift_width", "when", "lift"), f"lift_width has no value when lift is {uncovered[0]!r}",
                       found=list(width.when["lift"]), expected=f"every lift other than none: {[v for v in lift_kinds if v != 'none']}")
    _check_groups_split(labels, lift_kinds, errors)
    _check_kernel_range(labels, doc.space, errors)
    _check_heads(labels, doc.space, errors)
    _check_activation_scope(labels, errors)
    _check_weights_with_fpe(labels, errors)
    _check_exits(labels, doc.task.kind, doc.space, errors)


def check_task(space, d_in: int, in_shape: tuple, feature_groups=None, d_out: int | None = None) -> None:
    """NasInputError naming the place if a listed ``patch`` cannot cut this task's input into tokens, a
    listed ``rank`` or ``monarch_blocks`` fits no candidate's widths (``_check_weights``), a listed ``head``
    fits no candidate (``_check_head``), or the ``groups`` FPE split can be sampled and the task has no
    ``feature_groups``."""
    from nas.spaces.stages import token_grid

    labels = {p.label: p for p in space.params}
    _check_weights(space, labels, d_in)
    if d_out is not None:
        _check_head(space, labels, d_in, d_out)
    split = labels.get("fpe_split")
    if split is not None and "groups" in (split.values() or ()):
        if feature_groups is None:
            raise NasInputError(
                f"{space.place('space', 'fpe_split')}: the groups split needs the dataset's feature groups, and "
                f"{space.task.dataset} supplies none; expected an npz array feature_groups of shape (features,) "
                "(one group id per input feature, -1 for none), or dataset sat (its clauses)")
        if len(feature_groups) != d_in:
            raise NasInputError(
                f"{space.place('space', 'fpe_split')}: the groups split needs one feature group per input of "
                f"the {space.task.kind} task ({d_in}); {space.task.dataset} supplies {len(feature_groups)}")
    mixer = labels.get("mixer")
    if mixer is None or mixer.values() == ("none",):
        return
    patch = labels.get("patch")
    values = (0,) if patch is None else patch.values()
    if values is None:  # a range: candidates that do not fit are recorded as infeasible
        return
    errors = []
    for v in values:
        try:
            token_grid(tuple(in_shape), int(v), d_in)
        except ValueError as exc:
            errors.append(f"{space.place('space', 'patch')}: {exc}")
    if errors:
        raise NasInputError("\n".join(errors))

def _check_head(space, labels: dict, d_in: int, d_out: int) -> None:
    """NasInputError where a listed ``head`` fits no candidate of the space: ``none`` needs the flat MLP and a
    stream as wide as the output (d_z = d_out: lift none with d_in = d_out, or a lift_width of d_out); ``w2``
    (the last block as the output layer) needs the flat MLP without experts. A value that fits some candidates
    makes the others infeasible."""
    heads = [h for h in (_possible(labels, "head") or ()) if h != "linear"]
    if not heads:
        return
    problems = []
    mixers, experts = _possible(labels, "mixer"), _possible(labels, "moe_experts")
    if mixers is not None and "none" not in mixers:
        problems.append(("a mixer", "its candidates all have a token mixer (mixer: none among the choices)"))
    for h in heads:
        if h == "w2" and experts is not None and 1 not in experts:
            problems.append((h, "its candidates all have experts (moe_experts: 1 among the choices)"))
        if h == "none":
            lifts = _possible(labels, "lift") or ()
            widths = [d_in] if "none" in lifts else []
            if any(v != "none" for v in lifts):
                listed = _widths(labels["lift_width"]) if "lift_width" in labels else None
                widths = None if listed is None else widths + listed
            if widths is not None and d_out not in widths:
                problems.append((h, f"the stream is the output, so d_z must be d_out = {d_out}; this space's streams "
                                    f"are {_show_widths(sorted(set(widths)))} wide (lift none on a task with as many "
                                    "inputs as outputs, or a lift_width of d_out)"))
    for h, why in problems:
        head = "head " + (h if h in heads else "/".join(heads))
        raise NasInputError(f"{space.place('space', 'head')}: {head} fits no candidate of this space: {why}")


def _check_weights(space, labels: dict, d_in: int) -> None:
    """NasInputError where a listed ``rank`` or ``monarch_blocks`` fits no candidate's widths.

    A rank must be at most min(d_z, d_h), monarch blocks must divide d_z and
    d_h; a listed value (a choice, a fixed value, a range's high bound, or
    the default where the form can be sampled without its key) above the
    widest min(d_z, d_h) the space can have, or monarch blocks that divide
    none of its listed widths, can never be built. A value that fits some
    widths but not a sampled candidate's makes that candidate infeasible.
    """
    forms = _possible(labels, "weights")
    if forms == ("dense",):
        return
    lift_kinds, mixers = _possible(labels, "lift"), _possible(labels, "mixer")
    d_z_max, widths = 0, ()  # the widest d_z, and every d_z a candidate can have (None: not all listed)
    if any(v != "none" for v in lift_kinds):
        d_z_max, widths = _high(labels["lift_width"]), labels["lift_width"].values()
    if "none" in lift_kinds:  # d_z = d_in, or behind a mixer a token's features (at most d_in)
        d_z_max = max(d_z_max, d_in)
        widths = (*widths, d_in) if widths is not None and all(m == "none" for m in mixers) else None
    hidden = _possible(labels, "hidden_width")
    d_h_max = _high(labels["hidden_width"]) if hidden is None else max(hidden)
    narrow = min(d_z_max, d_h_max)
    errors = []
    for form, key in (("lowrank", "rank"), ("monarch", "monarch_blocks")):
        if form not in forms:
            continue
        param = labels.get(key)
        listed = (SPACE_DEFAULTS[key],) if param is None else param.values() or (int(param.high),)
        where = space.place("space", key) if param is not None else (
            f"{space.place('space', 'weights')} ({form} with the default {key} {SPACE_DEFAULTS[key]})")
        for v in listed:
            if v > narrow:
                errors.append(f"{where}: {key} {v} is above min(d_z, hidden_width) of every candidate this space "
                              f"can sample (at most {narrow}: d_z ≤ {d_z_max}, hidden_width ≤ {d_h_max}); "
                              f"expected {key} ≤ {narrow}")
            elif key == "monarch_blocks" and widths is not None and hidden is not None and not (
                    any(w % v == 0 for w in widths) and any(h % v == 0 for h in hidden)):
                errors.append(f"{where}: monarch_blocks {v} divides none of the widths it must divide: d_z "
                              f"{sorted(set(widths))}, hidden_width {sorted(set(hidden))}; expected a divisor "
                              "of a d_z and of a hidden_width")
    if errors:
        raise NasInputError("\n".join(errors))


def _possible(labels: dict, label: str) -> tuple | None:
    """The values ``label`` can take (its default where the file leaves it out), None for a range."""
    param = labels.get(label)
    return (SPACE_DEFAULTS[label],) if param is None else param.values()


def _high(param) -> int:
    return int(param.high) if param.values() is None else max(param.values())


def _check_weights_with_fpe(labels: dict, errors) -> None:
    """A structured weight form does not compose with FPE: an input error where every candidate would have both
    (a candidate that can have either alone and gets both is recorded as infeasible)."""
    weights, alpha = labels.get("weights"), labels.get("fpe_alpha")
    if weights is None or alpha is None or weights.when or alpha.when:
        return
    forms = weights.values()
    alphas = alpha.values() or (alpha.low,)
    if "dense" not in forms and min(alphas) > 1:
        errors.add(("space", "weights"), "a structured weight form does not compose with FPE (FPE expands and "
                   "prunes a dense W1 and W2), and every candidate of this space would have both",
                   found={"weights": list(forms), "fpe_alpha": list(alpha.values() or [alpha.low, alpha.high])},
                   expected="fpe_alpha 1, or dense among the weights (then `when: {weights: [dense]}` on "
                            "fpe_alpha keeps the two apart)")


def _check_groups_split(labels: dict, lift_kinds: tuple, errors) -> None:
    """``fpe_split: groups`` needs W1 to see the raw input features: only under lift none and no mixer."""
    split = labels.get("fpe_split")
    if split is None or "groups" not in (split.values() or ()):
        return
    for key, kinds in (("lift", lift_kinds), ("mixer", (labels["mixer"].values() or ()) if "mixer" in labels
                                              else (SPACE_DEFAULTS["mixer"],))):
        possible = [v for v in kinds if v in split.when.get(key, kinds)]  # where fpe_split can be groups
        if any(v != "none" for v in possible):
            errors.add(("space", "fpe_split"), f"the groups split needs W1 to read the input features themselves, "
                       f"so {key} must be none wherever fpe_split can be groups", found=possible,
                       expected=f"{key}: none, or `when: {{{key}: [none]}}` on fpe_split")


def _check_exits(labels: dict, kind: str, space: dict, errors) -> None:
    """Early exit needs class logits (a head's top softmax probability decides): only a task scored by accuracy."""
    exits = labels.get("exits")
    if exits is not None and kind in IMAGE_KINDS and exits.values() != (0,):
        errors.add(("space", "exits"), f"early exit needs class logits, and a {kind} task predicts pixels",
                   found=space["exits"], expected="exits: 0 (or no exits key), or task kind classification")


def _check_activation_scope(labels: dict, errors) -> None:
    """``activation_scope: neuron`` scopes a learnable activation's parameters: an input error where none of the
    activations the space can sample has any (relu, gelu, silu, tanh ignore it)."""
    scope = labels.get("activation_scope")
    if scope is None or "neuron" not in (scope.values() or ()):
        return
    activations = _possible(labels, "activation") or ()
    if not any(a in SCOPED_ACTIVATIONS for a in activations):
        errors.add(("space", "activation_scope"), "activation_scope neuron gives each unit its own parameters of a "
                   "learnable activation, and none of this space's activations has any", found=list(activations),
                   expected=f"one of {', '.join(SCOPED_ACTIVATIONS)} among the activations, or no activation_scope")


def _widths(param) -> list[int] | None:
    """The widths a ``lift_width`` parameter can take, None where unknown (or a range of over 100,000)."""
    if param.values() is not None:
        return [v for v in param.values() if type(v) is int]
    if param.kind != "int" or (param.high - param.low) / (param.step or 1) > 100_000:
        return None
    return list(range(int(param.low), int(param.high) + 1, int(param.step or 1)))


def _check_heads(labels: dict, space: dict, errors) -> None:
    """A head count (``mixer_heads``) that divides none of the widths the space's lift gives its mixers is an
    input error; one that divides some of them makes the others infeasible candidates. Only checked where every
    candidate's width is a ``lift_width`` of the file (a space that can have no lift takes its width from the
    task)."""
    heads, width = labels.get("mixer_heads"), labels.get("lift_width")
    lifts = _possible(labels, "lift")
    if heads is None or width is None or lifts is None or "none" in lifts or heads.values() is None:
        return
    widths = _widths(width)
    if not widths:
        return
    for h in heads.values():
        if type(h) is int and h > 0 and not any(w % h == 0 for w in widths):
            errors.add(("space", "mixer_heads"), f"{h} heads divide no width of this space's mixers (lift_width)",
                       found=space["mixer_heads"], expected=f"head counts that divide some of {_show_widths(widths)}")


def _show_widths(widths: list[int]) -> str:
    return ", ".join(map(str, widths)) if len(widths) <= 8 else f"{widths[0]}…{widths[-1]}"


def _check_kernel_range(labels: dict, space: dict, errors) -> None:
    """A range of ``mixer_kernel`` must hold odd sizes only: odd bounds (checked with its values) and an even step."""
    kernel = labels.get("mixer_kernel")
    if kernel is not None and kernel.kind == "int" and (kernel.step is None or kernel.step % 2):
        errors.add(("space", "mixer_kernel"), "a range of kernel sizes must hold odd sizes only, so it needs an even "
                   "step", found=space["mixer_kernel"], expected="e.g. {int: [3, 9], step: 2}, or a choice [3, 5, 7]")
