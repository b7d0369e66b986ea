"""Plots metrics from one or more workdirs' metrics.jsonl into a PNG.

  python scripts/plot.py --workdirs=runs/pre_ln,runs/sas_p --metrics=eval/loss,train/loss \
      --x=step --out=results/loss.png [--logy]

`--x=wall` plots against cumulative wall time (from `train/steps_per_sec` between log events).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from absl import flags  # noqa: E402

from trainloop import cli  # noqa: E402
from trainloop.config_util import ConfigError  # noqa: E402
from trainloop.metrics import read_metrics  # noqa: E402

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Comma-separated workdirs (label = basename).")
_METRICS = flags.DEFINE_list("metrics", ["train/loss"], "Metric keys to plot, one panel each.")
_X = flags.DEFINE_enum("x", "step", ["step", "wall"], "x axis: step or wall-clock seconds.")
_OUT = flags.DEFINE_string("out", "plot.png", "Output PNG path.")
_LOGY = flags.DEFINE_bool("logy", False, "Log-scale y axis.")
flags.mark_flag_as_required("workdirs")


def wall_clock(events: list[dict]) -> dict[int, float]:
    """Cumulative seconds at each train log step, integrated from steps/s between log events."""
    clock, t, prev = {}, 0.0, 0
    for e in events:
        if "train/steps_per_sec" in e:
            t += (e["step"] - prev) / max(e["train/steps_per_sec"], 1e-12)
            prev = e["step"]
            clock[e["step"]] = t
    return clock


def series(events: list[dict], key: str, x: str) -> tuple[list[float], list[float]]:
    clock = wall_clock(events) if x == "wall" else None
    xs, ys = [], []
    for e in events:
        if key not in e or not isinstance(e[key], (int, float)):
            continue
        if clock is not None:
            known = [s for s in clock if s <= e["step"]]
            if not known:
                continue
            xs.append(clock[max(known)])
        else:
            xs.append(e["step"])
        ys.append(e[key])
    return xs, ys


def load_runs(workdirs: list[str], metrics: list[str]) -> dict[str, list[dict]]:
    """{workdir: events}; ConfigError for a workdir without metrics or a metric no run logged."""
    runs = {}
    for workdir in workdirs:
        path = os.path.join(workdir, "metrics.jsonl")
        if not os.path.isdir(workdir):
            raise ConfigError(f"--workdirs entry {workdir!r} is not a directory.")
        runs[workdir] = read_metrics(path)
        if not runs[workdir]:
            raise ConfigError(f"No metric events in {path} (is {workdir!r} a training workdir?).")
    logged = sorted({k for events in runs.values() for e in events for k in e} - {"step"})
    for key in metrics:
        missing = [w for w, events in runs.items() if not any(key in e for e in events)]
        if missing:
            raise ConfigError(
                f"--metrics entry {key!r} is not logged in {missing}. Logged metrics: "
                f"{', '.join(logged)}."
            )
    return runs


def main(argv):
    cli.prologue(argv, verbosity=None)
    if not _METRICS.value:
        raise ConfigError("--metrics is empty; name at least one metric, e.g. train/loss.")
    runs = load_runs(_WORKDIRS.value, _METRICS.value)
    fig, axes = plt.subplots(1, len(_METRICS.value), figsize=(5 * len(_METRICS.value), 3.6))
    axes = [axes] if len(_METRICS.value) == 1 else list(axes)
    for ax, key in zip(axes, _METRICS.value, strict=True):
        for workdir, events in runs.items():
            xs, ys = series(events, key, _X.value)
            ax.plot(xs, ys, label=os.path.basename(os.path.normpath(workdir)))
        ax.set_xlabel("step" if _X.value == "step" else "wall-clock seconds")
        ax.set_ylabel(key)
        if _LOGY.value:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    fig.savefig(_OUT.value, dpi=120)
    print(f"Wrote {_OUT.value}")


if __name__ == "__main__":
    cli.run(main, stop_note="before the plot was written.")
