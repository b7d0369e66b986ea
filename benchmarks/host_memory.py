"""Host memory of the text pipeline against corpus size: does a larger corpus cost more RAM?

  .venv/bin/python benchmarks/host_memory.py                      # 50 MB and 400 MB corpora
  .venv/bin/python benchmarks/host_memory.py --sizes_mb=5,40 --steps=5   # a quick look

For each size, a local corpus is generated from the Python standard library's source with random
edits (every copy renames a random third of its identifiers and drops a few lines, so that the
tokenizer and the token store see text that does not repeat), then two processes are measured with
GNU `time -v` ("Maximum resident set size"):
- cold: `scripts/prepare_data.py` into an empty cache (tokenizer training on a bounded sample,
  streaming encode, memory-mapped token shards);
- warm: `scripts/train.py` for a few steps on the cache the cold step left behind, repeated
  (--warm_repeats; the peak varies by a few hundred MB from run to run), median reported.
The streaming pipeline keeps host memory bounded by the encode block and the tokenizer sample, so
the warm ratio (largest / smallest corpus) should stay near 1 and the cold peak well under 1 GB.
Writes host_memory.json and HOST_MEMORY.md next to this file (or into --out_dir). The corpora,
caches and run directories live under --workdir (default results/host_memory); delete it after.
"""

from __future__ import annotations

import argparse
import json
import keyword
import os
import pathlib
import random
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time

_HERE = pathlib.Path(__file__).resolve().parent
_ROOT = _HERE.parent
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != str(_HERE)]
sys.path.insert(0, str(_ROOT))

from benchmarks.machine import cpu_model, git_commit, load_average, versions  # noqa: E402

_IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
_KEEP = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(__builtins__))
_TARGETS = {"max_rss_ratio_warm": 1.2, "max_cold_peak_mb": 1024}


def _stdlib_sources() -> list[pathlib.Path]:
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)


def _edited(text: str, rng: random.Random) -> str:
    """One variant of a source file: a random third of its identifiers renamed, ~3% lines dropped."""
    names = sorted(set(_IDENTIFIER.findall(text)) - _KEEP)
    renamed = {n: f"{n[:3]}_{rng.getrandbits(24):06x}" for n in names if rng.random() < 1 / 3}
    text = _IDENTIFIER.sub(lambda m: renamed.get(m.group(0), m.group(0)), text)
    return "\n".join(line for line in text.split("\n") if rng.random() >= 0.03)


def make_corpus(out: pathlib.Path, size_mb: int, seed: int) -> dict:
    """Writes edited stdlib copies into `out` until it holds `size_mb` MB; reuses a finished one."""
    done = out / "DONE.json"
    if done.exists():
        return json.loads(done.read_text())
    out.mkdir(parents=True, exist_ok=True)
    rng, sources = random.Random(seed), _stdlib_sources()
    target, written, files, start = size_mb * 1_000_000, 0, 0, time.perf_counter()
    while written < target:
        for path in sources:
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            data = _edited(text, rng).encode("utf-8")
            shard = out / f"part_{files // 1000:04d}"
            shard.mkdir(exist_ok=True)
            (shard / f"{files % 1000:03d}_{path.stem}.py").write_bytes(data)
            written, files = written + len(data), files + 1
            if written >= target:
                break
    info = dict(size_mb=size_mb, bytes=written, files=files, seconds=time.perf_counter() - start)
    done.write_text(json.dumps(info))
    return info


def measured(cmd: list[str], log: pathlib.Path) -> dict:
    """Runs `cmd` under GNU time -v; returns its peak RSS (MB), wall time and exit status."""
    with open(log, "w") as f:
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd], stdout=f, stderr=subprocess.STDOUT)
    text = log.read_text()
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text).group(1)
    seconds = sum(float(x) * 60**i for i, x in enumerate(reversed(wall.split(":"))))
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit {proc.returncode}; see {log}")
    return dict(peak_rss_mb=round(rss_kb / 1024, 1), wall_s=round(seconds, 1))


def measure_size(size_mb: int, args) -> dict:
    work = pathlib.Path(args.workdir) / f"{size_mb}mb"
    corpus = make_corpus(work / "corpus", size_mb, seed=size_mb)
    cache, run = work / "cache", work / "run"
    for stale in (cache, run):  # the cold measurement needs an empty cache; runs never resume
        shutil.rmtree(stale, ignore_errors=True)
    data = [f"--config.data.source={work / 'corpus'}", f"--config.data.cache_dir={cache}"]
    py = sys.executable
    cold = measured(
        [py, "scripts/prepare_data.py", f"--config={args.config}", *data], work / "cold.log"
    )
    warm_runs = []
    for i in range(args.warm_repeats):  # the warm peak varies run to run: report the median
        shutil.rmtree(run, ignore_errors=True)
        warm_runs.append(
            measured(
                [py, "scripts/train.py", f"--config={args.config}", *data,
                 f"--config.num_steps={args.steps}", "--config.progress_bar=False",
                 f"--workdir={run}"],
                work / f"warm{i}.log",
            )
        )  # fmt: skip
    peaks = sorted(r["peak_rss_mb"] for r in warm_runs)
    warm = dict(
        peak_rss_mb=statistics.median(peaks),
        peak_rss_range_mb=[peaks[0], peaks[-1]],
        wall_s=statistics.median(r["wall_s"] for r in warm_runs),
        runs=warm_runs,
    )
    return dict(size_mb=size_mb, corpus=corpus, cold=cold, warm=warm)


def render(out: dict) -> str:
    rows = out["sizes"]
    small, large = rows[0], rows[-1]
    ratio = large["warm"]["peak_rss_mb"] / small["warm"]["peak_rss_mb"]
    ok_ratio = ratio <= _TARGETS["max_rss_ratio_warm"]
    ok_cold = large["cold"]["peak_rss_mb"] <= _TARGETS["max_cold_peak_mb"]
    lines = [
        "# Host memory of the text pipeline against corpus size",
        "",
        "Regenerated by `python benchmarks/host_memory.py`; do not edit by hand. Peak RSS is GNU "
        "`time -v`'s maximum resident set size of the whole process (Python, JAX and the model "
        "included).",
        "",
        f"- Command: `{out['command']}`, commit {out['commit']}, date {out['date']}",
        f"- CPU: {out['cpu']}, {os.cpu_count()} cores; load average before {out['load_before']}, "
        f"after {out['load_after']}",
        f"- Config: `{out['config']}` (warm: {out['steps']} training steps)",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in out['versions'].items() if v)}",
        "",
        "| corpus | files | cold build peak RSS | cold build wall | warm training peak RSS, "
        f"median of {out['warm_repeats']} (range) | warm training wall |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['corpus']['bytes'] / 1e6:.0f} MB | {r['corpus']['files']:,} | "
            f"{r['cold']['peak_rss_mb']:.0f} MB | {r['cold']['wall_s']:.0f} s | "
            f"{r['warm']['peak_rss_mb']:.0f} MB ({r['warm']['peak_rss_range_mb'][0]:.0f}-"
            f"{r['warm']['peak_rss_range_mb'][1]:.0f}) | {r['warm']['wall_s']:.0f} s |"
        )
    lines += [
        "",
        f"- Warm peak RSS, {large['size_mb']} MB / {small['size_mb']} MB corpus: **{ratio:.3f}x** "
        f"(target <= {_TARGETS['max_rss_ratio_warm']}x): {'met' if ok_ratio else 'NOT met'}.",
        f"- Cold build peak RSS at {large['size_mb']} MB: **{large['cold']['peak_rss_mb']:.0f} MB** "
        f"(target <= {_TARGETS['max_cold_peak_mb']} MB): {'met' if ok_cold else 'NOT met'}.",
        "",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes_mb", default="50,400")
    parser.add_argument("--config", default="configs/decoder.py:size=small")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warm_repeats", type=int, default=3)
    parser.add_argument("--workdir", default="results/host_memory")
    parser.add_argument("--out_dir", default=str(_HERE))
    args = parser.parse_args()
    try:
        sizes = sorted(int(s) for s in args.sizes_mb.split(","))
    except ValueError:
        parser.error(
            f"--sizes_mb={args.sizes_mb!r}: expected comma-separated integers, e.g. 50,400"
        )
    if args.warm_repeats < 1:
        parser.error(f"--warm_repeats={args.warm_repeats}: must be >= 1")
    if len(sizes) < 2 or sizes[0] <= 0:
        parser.error(f"--sizes_mb={args.sizes_mb!r}: give at least two positive sizes in MB")
    os.chdir(_ROOT)
    out = dict(
        command="python benchmarks/host_memory.py " + " ".join(sys.argv[1:]),
        commit=git_commit(),
        date=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        cpu=cpu_model(),
        config=args.config,
        steps=args.steps,
        warm_repeats=args.warm_repeats,
        versions=versions(),
        load_before=load_average(),
    )
    out["sizes"] = []
    for size in sizes:
        out["sizes"].append(measure_size(size, args))
        print(json.dumps(out["sizes"][-1]), flush=True)
    out["load_after"] = load_average()
    out_dir = pathlib.Path(args.out_dir)
    (out_dir / "host_memory.json").write_text(json.dumps(out, indent=1) + "\n")
    (out_dir / "HOST_MEMORY.md").write_text(render(out))
    print(render(out))


if __name__ == "__main__":
    main()
