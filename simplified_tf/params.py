"""Parameter accounting and the weight-decay rules (docs/simplified_tf.md sections 6-7;
paper Sec. 4 footnote 7, App. D.1).

Everything here works on the abstract model (`nnx.eval_shape`), so paper-sized models are counted
without allocating. Only `nnx.Param`s count: fixed W_init and fixed gains (`layers.Fixed`) are not
parameters. Paths are "/"-joined dict keys of `nnx.to_pure_dict(nnx.state(model, nnx.Param))`, the same
paths the trainloop's optimiser rules match.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import ml_collections
from flax import nnx

from simplified_tf.model_config import validate
from simplified_tf.models import build_model

GROUPS = ("embeddings", "attention", "mlp", "norms", "gains", "head")
GAIN_NAMES = ("alpha", "beta", "gamma", "beta_sa", "alpha_ff", "beta_ff")
BLOCK_MATRIX_NAMES = ("w_qk", "w", "delta", "w_1", "w_2")

# Regexes (re.search) over "/"-joined param paths: biases, norm scales/biases and every gain.
NO_DECAY_RULES = (
    r"(^|/)(b_qk|bias)$",
    r"(^|/)[^/]*norm[^/]*/scale$",
    r"(^|/)(" + "|".join(GAIN_NAMES) + r")$",
)

# Non-Param state (layers.Fixed): fixed W_init and fixed reparam gains. If a task keeps the whole
# model state in its params dict, these rules (optimizer.frozen) keep them from ever changing.
FROZEN_RULES = (r"(^|/)(w_init|alpha_fixed|beta_fixed)$",)


def frozen_rules(model_config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """Rules for `optimizer.frozen` matching every non-trainable `Fixed` variable of the model."""
    validate(model_config)
    return FROZEN_RULES


def no_decay_rules(model_config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """Rules for `optimizer.no_decay`: all biases (b_qk, LayerNorm/head biases), all norm scales,
    and every gain (β_SA, α_FF, β_FF; shaped α_h, β_h, γ_h; reparam α, β). Matrices, ΔW and both
    embedding tables are decayed. The rules are the same for every block; the config is validated."""
    validate(model_config)
    return NO_DECAY_RULES


def abstract_model(model_config: ml_collections.ConfigDict) -> nnx.Module:
    """The model with `jax.ShapeDtypeStruct` leaves (nothing allocated)."""
    return nnx.eval_shape(lambda: build_model(model_config, rngs=nnx.Rngs(0)))


class ModelFns(NamedTuple):
    """Pure-dict view of an NNX model, as the tasks keep it: params are `nnx.to_pure_dict` of the
    full model state (Params and fixed variables), nested dicts of arrays.

    init(rng) -> params (jittable); state_of(params) -> nnx.State (keys missing from `params` stay
    `jax.ShapeDtypeStruct` leaves of the template); merge(params) -> the model.
    """

    graphdef: nnx.GraphDef
    init: Callable[[jax.Array], dict]
    merge: Callable[[Mapping], nnx.Module]
    state_of: Callable[[Mapping], nnx.State]


def module_fns(build: Callable[[nnx.Rngs], nnx.Module]) -> ModelFns:
    """`ModelFns` of the module `build(rngs)` makes (one abstract template, copied on every
    `state_of` call)."""
    graphdef, template = nnx.split(nnx.eval_shape(lambda: build(nnx.Rngs(0))))

    def init(rng):
        return nnx.to_pure_dict(nnx.state(build(nnx.Rngs(rng))))

    def state_of(params):
        state = jax.tree.map(lambda x: x, template)  # fresh copy: replace_by_pure_dict mutates
        nnx.replace_by_pure_dict(state, params)
        return state

    def merge(params):
        return nnx.merge(graphdef, state_of(params))

    return ModelFns(graphdef, init, merge, state_of)


def model_fns(model_config: ml_collections.ConfigDict) -> ModelFns:
    """`ModelFns` of the model `build_model(model_config)` (DecoderLM or BertMLM)."""
    validate(model_config)
    return module_fns(lambda rngs: build_model(model_config, rngs=rngs))


def param_shapes(model_or_config) -> dict[str, tuple[int, ...]]:
    """{path: shape} of every nnx.Param, from a model or (abstractly) from a model config."""
    model = model_or_config
    if isinstance(model_or_config, ml_collections.ConfigDict):
        model = abstract_model(model_or_config)
    tree = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(str(k.key) for k in path): tuple(leaf.shape) for path, leaf in flat}


def group_of(path: str) -> str:
    parts = path.split("/")
    name = parts[-1]
    if parts[0] == "embed":
        return "embeddings"
    if any("norm" in p for p in parts[:-1]):
        return "norms"
    if name in GAIN_NAMES:
        return "gains"
    if "mlp" in parts:
        return "mlp"
    if "attn" in parts:
        return "attention"
    return "head"


def count_params(model_config: ml_collections.ConfigDict) -> dict[str, int]:
    """Parameter counts per group, plus `total`, `total_excl_gains` (the convention of the paper's
    "167M"), and `block_matrices_per_layer` (matrix entries of one stacked block, layers >= 1)."""
    counts = dict.fromkeys(GROUPS, 0)
    per_layer = 0
    for path, shape in param_shapes(model_config).items():
        n = math.prod(shape)
        counts[group_of(path)] += n
        if path.startswith("blocks/rest/") and path.split("/")[-1] in BLOCK_MATRIX_NAMES:
            per_layer += n // shape[0]
    counts["total"] = sum(counts[g] for g in GROUPS)
    counts["total_excl_gains"] = counts["total"] - counts["gains"]
    counts["block_matrices_per_layer"] = per_layer
    return counts


def no_decay_paths(model_config: ml_collections.ConfigDict) -> list[str]:
    rules = [re.compile(r) for r in no_decay_rules(model_config)]
    return [p for p in param_shapes(model_config) if any(r.search(p) for r in rules)]
