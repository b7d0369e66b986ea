"""Block comparison helpers for scripts/compare_blocks.py: configs, resumable training, fair timing,
summary table and plots.

Fair throughput: after all training, the jitted train step of every block (the loop's own
`make_train_step`, same batch and optimizer) is timed in one process, interleaved round by round,
so load from other jobs on a shared machine hits every block alike. Step times are medians of
individually synchronised steps; speeds are reported relative to a baseline block (pre_ln).
Wall-clock curves use `step x median step time`, so slow patches during training do not distort
them.
"""

from __future__ import annotations

import json
import os
import statistics
import time

import jax
import ml_collections

from trainloop import config_util
from trainloop import mesh as mesh_lib
from trainloop.config_util import ConfigError, apply_overrides
from trainloop.defaults import validate
from trainloop.metrics import read_metrics
from trainloop.step import build_programs


def load_config(spec: str, block: str, steps: int = 0, overrides=()) -> ml_collections.ConfigDict:
    """`path.py[:args]` with `block=<block>` appended, then `overrides` ("data.source=DIR", see
    `apply_overrides`) and `num_steps` = steps if steps > 0; the shared keys are validated."""
    path, _, arg = spec.partition(":")
    parts = [p for p in arg.split(",") if p and not p.startswith("block=")]
    config = config_util.load_config(f"{path}:{','.join(parts + [f'block={block}'])}")
    if "model" not in config or config.model.get("kind") not in ("decoder", "bert"):
        raise ConfigError(f"{spec!r} is not a simplified_tf config (needs model.kind).")
    apply_overrides(config, overrides)
    if steps:
        config.num_steps = int(steps)
    return validate(config)


def latest_step(workdir: str) -> int | None:
    """Latest checkpoint step in WORKDIR/checkpoints (None if there is none), read-only."""
    directory = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(directory):
        return None
    steps = [int(n) for n in os.listdir(directory) if n.isdigit()]
    return max(steps) if steps else None


def is_finished(workdir: str, num_steps: int) -> bool:
    step = latest_step(workdir)
    return step is not None and step >= num_steps


def eval_curve(workdir: str) -> dict[str, list[float]]:
    """{"step", "loss", "accuracy"} of every eval event in WORKDIR/metrics.jsonl."""
    out = {"step": [], "loss": [], "accuracy": []}
    for e in read_metrics(os.path.join(workdir, "metrics.jsonl")):
        if "eval/loss" in e:
            out["step"].append(int(e["step"]))
            out["loss"].append(float(e["eval/loss"]))
            out["accuracy"].append(float(e.get("eval/accuracy", float("nan"))))
    return out


def timing_program(config: ml_collections.ConfigDict, task):
    """(jitted donated train step, initial state, a placed batch) exactly as the loop builds them
    (`trainloop.step.build_programs`: the same mesh, FSDP shardings and keys)."""
    programs = build_programs(config, task)
    batch = mesh_lib.global_batch(task.host_batch(0, 0, 1), programs.mesh, int(config.batch_size))
    return programs.train_step, programs.initial_state(), batch


def time_interleaved(programs: dict, *, rounds: int = 3, steps: int = 10, warmup: int = 2):
    """{name: [seconds per step]} timing every program `steps` times per round, rounds interleaved.

    `programs` maps a name to (step_fn, state, batch); `step_fn(state, batch) -> (state, metrics)`
    must donate/replace its state. Every timed step is synchronised on its output.
    """
    states = {}
    for name, (fn, state, batch) in programs.items():
        for _ in range(warmup):  # compile + first runs
            state, metrics = fn(state, batch)
        jax.block_until_ready((state, metrics))
        states[name] = state
    times = {name: [] for name in programs}
    for r in range(rounds):
        order = list(programs) if r % 2 == 0 else list(programs)[::-1]
        for name in order:
            fn, _, batch = programs[name]
            state = states[name]
            for _ in range(steps):
                t0 = time.perf_counter()
                state, metrics = fn(state, batch)
                jax.block_until_ready((state, metrics))
                times[name].append(time.perf_counter() - t0)
            states[name] = state
    return times


def summarize(rows: list[dict], baseline: str = "pre_ln") -> list[dict]:
    """Adds tokens_per_s, speed_rel and params_rel to each row.

    Each row needs: block, params, step_time_s, tokens_per_step (plus anything else, kept). Relative
    numbers are against the `baseline` block, or the first row if the baseline is absent.
    speed_rel = baseline step time / step time (> 1 is faster).
    """
    if not rows:
        return []
    base = next((r for r in rows if r["block"] == baseline), rows[0])
    out = []
    for r in rows:
        r = dict(r)
        r["tokens_per_s"] = r["tokens_per_step"] / r["step_time_s"]
        r["speed_rel"] = base["step_time_s"] / r["step_time_s"]
        r["params_rel"] = r["params"] / base["params"]
        r["baseline"] = base["block"]
        out.append(r)
    return out


def markdown_table(rows: list[dict]) -> str:
    base = rows[0]["baseline"] if rows else "pre_ln"
    lines = [
        f"| block | steps | final eval loss | eval acc | params | params / {base} | "
        f"step time (s) | tokens/s | speed / {base} | est. train time (min) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['block']} | {r['final_step']} | {r['eval_loss']:.4f} | "
            f"{r['eval_accuracy']:.4f} | {r['params']:,} | {r['params_rel']:.3f} | "
            f"{r['step_time_s']:.3f} | {r['tokens_per_s']:,.0f} | {r['speed_rel']:.3f} | "
            f"{r['final_step'] * r['step_time_s'] / 60:.1f} |"
        )
    return "\n".join(lines)


def plot_curves(curves: dict, step_times: dict, path: str, title: str = "") -> None:
    """Eval loss vs step and vs estimated wall time (step x measured median step time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90)
    for block, c in curves.items():
        if not c["step"]:
            continue
        ax1.plot(c["step"], c["loss"], marker=".", label=block)
        minutes = [s * step_times[block] / 60 for s in c["step"]]
        ax2.plot(minutes, c["loss"], marker=".", label=block)
    ax1.set_xlabel("step")
    ax2.set_xlabel("estimated training time (min, measured step time x step)")
    for ax in (ax1, ax2):
        ax.set_ylabel("eval loss")
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_summary(out_dir: str, rows: list[dict], extra: dict) -> tuple[str, str]:
    md_path = os.path.join(out_dir, "summary.md")
    json_path = os.path.join(out_dir, "summary.json")
    table = markdown_table(rows)
    notes = [
        "",
        f"Config: `{extra.get('config')}`; {extra.get('tokens_per_step')} tokens per step. "
        f"Timing: {extra.get('timing')}.",
        "Speeds come from one interleaved timing pass after training (median of synchronised "
        "steps); est. train time = steps x step time.",
    ]
    with open(md_path, "w") as f:
        f.write(table + "\n" + "\n".join(notes) + "\n")
    with open(json_path, "w") as f:
        json.dump({**extra, "blocks": rows}, f, indent=2, sort_keys=True)
        f.write("\n")
    return md_path, json_path


def median(xs) -> float:
    return float(statistics.median(xs))
