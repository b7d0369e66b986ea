"""Signal-propagation profile of one or more blocks (rank collapse, paper Sec. 4.1), at init or
from a training checkpoint.

At init, comparing the shaped-attention blocks with a plain-softmax skipless block (rank collapse):
  python scripts/signal_prop.py --config=configs/decoder.py:size=paper \
      --blocks=pre_ln,sas,sas_p,naive_skipless --batch=4 --out=results/signal_prop
  python scripts/signal_prop.py --config=configs/decoder.py:size=deep \
      --blocks=pre_ln,sas,sas_p,naive_skipless --batch=2 --out=results/signal_prop   # 72 layers
Without --config: `--size=paper --kind=decoder` (model presets only). From a checkpoint made by
scripts/train.py (one block; the model config comes from --config or WORKDIR/config.json):
  python scripts/signal_prop.py --workdir=runs/lm_sas_p_small [--step=2000] [--tokens=data]

Expected at init: the token cosine similarity of sas / sas_p / v_skipinit stays at the embedding
level at every depth (their attention is exactly the identity), while `naive_skipless` (sas with
plain softmax attention and standard query init, see simplified_tf/diagnostics.py) climbs to ~1.
Measured (size=paper, random tokens, cosine at emb / block 0 / middle / last): 18 layers, batch 4:
sas, sas_p, v_skipinit 0.000 / 0.000 / 0.005 / 0.010; naive_skipless 0.000 / 0.60 / 0.998 / 1.000;
pre_ln 0.000 / 0.54 / 0.81 / 0.84. 72 layers, batch 2: shaped 0.000 / 0.000 / 0.022 / 0.041 (the
beta_FF = 0.1 ReLU MLP branches add a slow common component); naive 0.61 / 1.000 / 1.000.

Blocks: presets of simplified_tf.model_config plus the variants `naive_skipless` and
`naive_skipless_p`. With --config, the config's own block uses config.model as given (including
--config.model.* overrides); other blocks get their preset with the config's size and shape keys
(`SHARED_KEYS`; beta_ff only for skipless blocks). Tokens: `random` (uniform ids from the vocab,
the default; right for init) or `data` (the config's first eval batch; needs --config with data).

Writes into --out, with stem `<kind>_<size>_L<layers>[_step<N>]`: `_cosine_rms.png`,
`_batch_corr.png`, `_outliers.png` (kurtosis, feature corr, max/median), `_entropy.png`, a markdown
table `.md` and the full profile `.json`; prints their paths and a first/middle/last summary.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from trainloop import cli  # noqa: E402
from trainloop.config_util import ConfigError, check_choice, check_min  # noqa: E402

_CONFIG = cli.define_config_flag(
    "config", "Experiment config (path.py:args), e.g. configs/decoder.py:block=sas_p,size=paper."
)
_BLOCKS = flags.DEFINE_list(
    "blocks", None, "Blocks to compare (default: the config's block, or a standard set)."
)
_SIZE = flags.DEFINE_string("size", "paper", "Size preset when no --config is given.")
_KIND = flags.DEFINE_string("kind", "decoder", "decoder | bert, when no --config is given.")
_LAYERS = flags.DEFINE_integer("layers", 0, "Override the number of layers (0 = preset).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Load params from WORKDIR/checkpoints (one block).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_BATCH = flags.DEFINE_integer("batch", 4, "Sequences per forward pass.")
_SEQ = flags.DEFINE_integer("seq", 0, "Sequence length (0 = min(model seq_len, 128)).")
_TOKENS = flags.DEFINE_enum("tokens", "random", ["random", "data"], "Input tokens.")
_SEED = flags.DEFINE_integer("seed", 0, "Model init seed (tokens use seed + 1).")
_OUT = flags.DEFINE_string("out", "results/signal_prop", "Output directory.")

DEFAULT_BLOCKS = ("pre_ln", "sas", "sas_p", "naive_skipless")
# Keys carried from the --config model to the other compared blocks.
SHARED_KEYS = (
    "num_layers", "width", "num_heads", "d_ff", "vocab_size", "seq_len", "max_len", "dtype",
    "scan_layers", "remat", "pos_emb", "init_std", "norm_eps", "final_norm_eps",
)  # fmt: skip
PLOTS = {
    "cosine_rms": ("cosine", "rms"),
    "batch_corr": ("batch_corr_mean", "batch_corr_rms"),
    "outliers": ("kurtosis", "feat_corr_rms", "max_median_ratio"),
    "entropy": ("entropy",),
}


def _base_model_config():
    """(model config from --config / WORKDIR/config.json, or None; the full config or None)."""
    import ml_collections

    if _CONFIG.value is not None:
        return ml_collections.ConfigDict(_CONFIG.value.model.to_dict()), _CONFIG.value
    if _WORKDIR.value:
        from trainloop.checkpoint import read_run_config

        config = read_run_config(_WORKDIR.value)
        if "model" not in config:
            raise ConfigError(f"{_WORKDIR.value}/config.json has no model section.")
        return ml_collections.ConfigDict(config.model.to_dict()), None
    return None, None


def model_configs(base) -> dict:
    """{block name: model config} for every block to profile."""
    from simplified_tf import diagnostics as D
    from simplified_tf.model_config import SKIPLESS_BLOCKS, validate

    names = _BLOCKS.value or ([base.block] if base is not None else list(DEFAULT_BLOCKS))
    for n in names:
        check_choice("--blocks entry", n, D.MODEL_NAMES)
    if _WORKDIR.value and (len(names) != 1 or (base is not None and names[0] != base.block)):
        raise ConfigError(
            f"--workdir holds one model ({base.block if base else '?'}); --blocks={names} must be "
            "that block alone (or omitted)."
        )
    layers = {"num_layers": _LAYERS.value} if _LAYERS.value > 0 else {}
    out = {}
    for name in names:
        if base is not None and name == base.block:
            cfg = base.copy_and_resolve_references()
            cfg.update(layers)
            out[name] = validate(cfg)
            continue
        if base is None:
            out[name] = D.diag_model_config(name, _SIZE.value, _KIND.value, **layers)
            continue
        preset = D.VARIANTS.get(name, (name, {}))[0]
        keys = SHARED_KEYS + (("beta_ff",) if preset in SKIPLESS_BLOCKS else ())
        shared = {k: base[k] for k in keys if k in base}
        out[name] = D.diag_model_config(name, base.size, base.kind, **(shared | layers))
    return out


def make_tokens(cfg, config, T: int):
    import jax

    if _TOKENS.value == "random":
        key = jax.random.key(_SEED.value + 1)
        return jax.random.randint(key, (_BATCH.value, T), 0, cfg.vocab_size)
    if config is None or "data" not in config:
        raise ConfigError("--tokens=data needs a --config with a data section.")
    from simplified_tf.data import make_text_data

    data = make_text_data(config.data, kind=cfg.kind, global_batch_size=_BATCH.value, seed=0)
    batch = next(iter(data.eval_batches()))
    if "valid" in batch and not batch["valid"][:, :T].all():
        raise ConfigError("--tokens=data: the eval batch has padding; statistics assume none.")
    return batch["inputs"][:, :T]


def plot(profiles: dict, stats: tuple[str, ...], path: str, title: str, hline=None) -> None:
    """One panel per statistic, one line per block; `hline` = {stat: (value, label)} references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(stats), figsize=(5.5 * len(stats), 4), squeeze=False)
    for ax, stat in zip(axes[0], stats, strict=True):
        for name, prof in profiles.items():
            y = np.asarray(prof[stat])
            x = np.arange(len(y)) - 1  # -1 = embeddings
            ax.plot(x, y, marker="." if len(y) < 40 else None, label=name)
        if hline and stat in hline:
            ax.axhline(hline[stat][0], color="k", ls="--", lw=0.8, label=hline[stat][1])
        if stat == "rms" or stat == "kurtosis":
            ax.set_yscale("log")
        if stat == "cosine":
            ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("layer (-1 = embeddings)")
        ax.set_title(stat)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_rows(profiles: dict) -> list[dict]:
    rows = []
    for name, prof in profiles.items():
        cos = prof["cosine"]
        L = len(cos) - 1
        rows.append(
            {
                "block": name,
                "emb": float(cos[0]),
                "first (0)": float(cos[1]),
                f"middle ({(L - 1) // 2})": float(cos[1 + (L - 1) // 2]),
                f"last ({L - 1})": float(cos[L]),
            }
        )
    return rows


def main(argv):
    cli.prologue(argv, verbosity=None)
    run()


def run():
    import time

    import numpy as np
    from flax import nnx

    from simplified_tf import diagnostics as D

    for name, value, low in (("batch", _BATCH.value, 1), ("seq", _SEQ.value, 0),
                             ("layers", _LAYERS.value, 0)):  # fmt: skip
        check_min(f"--{name}", value, low)
    base, config = _base_model_config()
    cfgs = model_configs(base)
    params, step = (None, None)
    if _WORKDIR.value:
        from trainloop.checkpoint import restore_run_params

        run = restore_run_params(_WORKDIR.value, step=_STEP.value)
        params, step = run.params, run.step
    first = next(iter(cfgs.values()))
    T = _SEQ.value or min(int(first.seq_len), 128)
    if T > int(first.max_len):
        raise ConfigError(f"--seq={T} exceeds the model's max_len={first.max_len}.")
    tokens = make_tokens(first, config, T)

    profiles, scalars = {}, {}
    for name, cfg in cfgs.items():
        t0 = time.time()
        model = (
            D.model_from_params(cfg, params)
            if params is not None
            else D.init_model(cfg, _SEED.value)
        )
        prof = D.signal_profile(model, tokens, causal=cfg.kind == "decoder")
        profiles[name] = {k: v.tolist() for k, v in prof.items()}
        scalars[name] = D.scalar_table(nnx.to_pure_dict(nnx.state(model)))
        print(f"{name}: {cfg.num_layers} layers x width {cfg.width}, {time.time() - t0:.1f}s")
        del model

    L = first.num_layers
    stem = f"{first.kind}_{first.size}_L{L}" + (f"_step{step}" if step is not None else "")
    os.makedirs(_OUT.value, exist_ok=True)
    where = f"step {step} of {_WORKDIR.value}" if step is not None else "init"
    title = f"{first.kind} {first.size}, {L} layers, {where}, {_TOKENS.value} tokens {tokens.shape}"
    hline = None
    if first.kind == "decoder":
        hline = {"entropy": (D.uniform_causal_entropy(T), "uniform causal")}
    paths = []
    for suffix, stats in PLOTS.items():
        path = os.path.join(_OUT.value, f"{stem}_{suffix}.png")
        plot(profiles, stats, path, title, hline)
        paths.append(path)

    summary = summary_rows(profiles)
    md = [f"# Signal propagation: {title}", "", "## Token cosine similarity", ""]
    md.append(D.markdown_table(summary, list(summary[0])))
    for name, prof in profiles.items():
        rows = D.profile_rows({k: np.asarray(v) for k, v in prof.items()})
        md += ["", f"## {name}", "", D.markdown_table(rows, ["layer", *D.STATS])]
        if scalars[name]:
            cols = ["layer"] + sorted({k for r in scalars[name] for k in r} - {"layer"})
            md += ["", f"Scalar gains ({name}):", "", D.markdown_table(scalars[name], cols)]
    if _TOKENS.value == "random" and any(c.kind == "decoder" for c in cfgs.values()):
        md += ["", f"Uniform causal attention entropy at T={T}: {D.uniform_causal_entropy(T):.4f}"]
    md_path = os.path.join(_OUT.value, f"{stem}.md")
    with open(md_path, "w") as f:
        f.write("\n".join(md) + "\n")
    json_path = os.path.join(_OUT.value, f"{stem}.json")
    with open(json_path, "w") as f:
        json.dump(
            {
                "where": where,
                "tokens": _TOKENS.value,
                "tokens_shape": list(tokens.shape),
                "models": {n: c.to_dict() for n, c in cfgs.items()},
                "profiles": profiles,
                "scalar_tables": scalars,
            },
            f,
            indent=1,
        )
    print("\n" + D.markdown_table(summary, list(summary[0]), fmt="{:.3f}") + "\n")
    for p in paths + [md_path, json_path]:
        print(p)


if __name__ == "__main__":
    cli.run(main, stop_note="before the profile was written.")
