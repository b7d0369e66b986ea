"""benchmarks/run.py: the measurement function on a tiny config (2 timed steps), the derived fields
(ratios, MFU, parameter formula), target checks and the RESULTS.md rendering. No timing assertions."""

import copy
import math
import os
import sys

import jax
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import machine, report, run, torch_peers  # noqa: E402
from benchmarks.decoder import analytic_flops, spec_formula_params  # noqa: E402
from simplified_tf.model_config import model_config  # noqa: E402
from simplified_tf.params import count_params  # noqa: E402


@pytest.fixture(scope="module")
def tiny_section():
    peak = machine.MatmulPeak(n=128, device=jax.devices()[0])
    sec = run.measure_decoder(
        "tiny",
        2,
        blocks=("pre_ln", "sas_p"),
        rounds=1,
        steps_per_round=2,
        warmup=1,
        devices=jax.devices()[:1],
        peak=peak,
    )
    return run.summarise(sec)


@pytest.mark.slow  # compiles two decoders: ~1 min of CPU on 2 cores
def test_measure_decoder_fields_and_ratios(tiny_section):
    configs = tiny_section["configs"]
    assert set(configs) == {"pre_ln", "sas_p"}
    base, sas_p = configs["pre_ln"], configs["sas_p"]
    for r in (base, sas_p):
        assert r["steps_timed"] == 2
        assert r["tokens_per_step"] == 2 * 32
        assert math.isclose(r["tokens_per_sec"], r["tokens_per_step"] / r["step_time_s"])
        assert r["compile_time_s"] > 0 and r["flops_source"] == "analytic"
        assert math.isfinite(r["loss_first"]) and math.isfinite(r["loss_last"])
        peak = tiny_section["peak"]["gflops_per_sec"] * 1e9
        assert math.isclose(r["mfu"], r["flops_per_step"] / r["step_time_s"] / peak)
    assert base["tokens_per_sec_ratio"] == 1.0
    assert len(sas_p["round_median_step_s"]) == 1  # one round
    # The ratio is paired per round: pre_ln's round median over sas_p's.
    paired = base["round_median_step_s"][0] / sas_p["round_median_step_s"][0]
    assert math.isclose(sas_p["tokens_per_sec_ratio"], paired)
    assert math.isclose(
        sas_p["tokens_per_sec_ratio_of_medians"], sas_p["tokens_per_sec"] / base["tokens_per_sec"]
    )
    assert math.isclose(sas_p["step_time_ratio"], sas_p["step_time_s"] / base["step_time_s"])
    # SAS-P removes W_V (layers >= 1) and W_P: fewer parameters and fewer FLOPs than Pre-LN.
    assert sas_p["params_ratio"] < 1.0
    assert sas_p["flops_per_step"] < base["flops_per_step"]


@pytest.mark.parametrize(
    "block", ["pre_ln", "parallel", "v_skipinit", "sas", "sas_p", "sas_p_nonorm"]
)
def test_param_formula_matches_model(block):
    cfg = model_config(block, "small")
    assert count_params(cfg)["total_excl_gains"] == spec_formula_params(cfg)


def test_analytic_flops_pre_ln_by_hand():
    cfg = model_config("pre_ln", "tiny")
    d, f, L, V, T, B = cfg.width, cfg.d_ff, cfg.num_layers, cfg.vocab_size, cfg.seq_len, 3
    n_matmul = L * (4 * d * d + 2 * d * f) + V * d
    expected = 6 * n_matmul * B * T + 12 * L * T * d * B * T
    assert analytic_flops(cfg, B)["flops"] == expected


def _fake_results(section):
    """A results dict with every Table-1 block (copies of the measured ones) for rendering."""
    sec = copy.deepcopy(section)
    src = sec["configs"]["sas_p"]
    for block in run.BLOCKS:
        if block not in sec["configs"]:
            sec["configs"][block] = dict(copy.deepcopy(src), block=block)
    for name, slower in (("hf_gpt2", 2.0), ("torch_sas_p", 4.0)):
        sec["configs"][name] = dict(
            block=name,
            tokens_per_sec=src["tokens_per_sec"] / slower,
            step_time_s=src["step_time_s"] * slower,
            round_median_step_s=[t * slower for t in src["round_median_step_s"]],
            tokens_per_step=src["tokens_per_step"],
            n_params=1,
        )
    sec = run.summarise(sec)
    results = dict(
        mode="quick",
        command="python benchmarks/run.py --quick",
        machine=machine.machine_info(),
        load_average_before=[1.0, 1.0, 1.0],
        load_average_after=[2.0, 2.0, 2.0],
        settings=dict(run.MODES["quick"], sizes=["tiny"]),
        decoder={"tiny": sec},
        wall_time_s=1.0,
    )
    results["targets"] = report.targets(results)
    return results


@pytest.mark.slow  # shares the fixture above
def test_render_contains_every_block_and_targets(tiny_section):
    results = _fake_results(tiny_section)
    text = report.render(results)
    for block in run.BLOCKS:
        assert f"| {block} |" in text
    assert "GPT2LMHeadModel" in text
    for t in report.TARGETS.values():
        assert t[0] in text
    assert str(results["load_average_before"]) in text
    # Peer ratios, paired per round: the peer's step time over ours (pre_ln / sas_p).
    sec = results["decoder"]["tiny"]
    c = sec["configs"]
    pre, sas_p = c["pre_ln"]["round_median_step_s"][0], c["sas_p"]["round_median_step_s"][0]
    assert math.isclose(sec["vs_peers"]["pre_ln_vs_hf_gpt2"], 2.0 * sas_p / pre)
    assert math.isclose(sec["vs_peers"]["sas_p_vs_torch_sas_p"], 4.0)
    assert "pre_ln_vs_hf_gpt2_compiled" not in sec["vs_peers"]
    t = results["targets"]
    assert t["param_formula"]["status"] == "hit"
    assert t["vs_torch_sas_p"]["status"] == "hit"
    assert t["linear_tf_protocol"]["status"] == "not measured"
    assert t["bench_time"]["status"] == "not measured"  # quick mode


def test_target_status_thresholds():
    results = {
        "mode": "full",
        "wall_time_s": 901.0,
        "decoder": {},
        "linear_tf": {"speedups": {"protocol": 9.9, "single_run": 5.0}},
        "compile": {"ratio_72_vs_18": 1.2},
    }
    t = report.targets(results)
    assert t["linear_tf_protocol"]["status"] == "missed"
    assert t["linear_tf_single"]["status"] == "hit"
    assert t["compile_depth"]["status"] == "hit"
    assert t["bench_time"]["status"] == "missed"
    assert t["sas_p_speed"]["status"] == "not measured"


def test_paired_ratio_cancels_drift():
    # The machine slows down between rounds; within each round the block is 1.25x faster.
    base = [1.0, 2.0, 1.5]
    block = [0.8, 1.6, 1.2]
    assert math.isclose(run.paired_ratio(base, block), 1.25)
    # One disturbed round (the block's step hit by load) does not move the median.
    assert math.isclose(run.paired_ratio(base, [0.8, 4.0, 1.2]), 1.25)


def test_only_filter_rejects_unknown_section():
    assert run.parse_only("decoder,peer") == ("decoder", "peer")
    assert run.parse_only("") == run.SECTIONS
    with pytest.raises(SystemExit, match="valid: decoder, peer, linear, compile"):
        run.parse_only("gpu")


def test_peer_missing_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    msg = torch_peers.missing()
    assert msg is not None and "torch==2.13.0" in msg


@pytest.mark.slow  # importing transformers + torch threads: ~1-3 min on a busy 2-core machine
def test_gpt2_peer_tiny_step():
    pytest.importorskip("transformers")
    from benchmarks.decoder import random_batch

    cfg = model_config("pre_ln", "tiny")
    peer = torch_peers.GPT2Peer(cfg, random_batch(cfg, 2), 2)
    peer.warmup(1)
    peer.run(2)
    r = peer.result()
    assert r["steps_timed"] == 2 and r["tokens_per_step"] == 2 * cfg.seq_len
    assert math.isclose(r["tokens_per_sec"], r["tokens_per_step"] / r["step_time_s"])
    # Same shapes as ours: tied head, n_inner = d_ff; GPT-2 adds biases and LayerNorm shifts.
    assert peer.config.n_inner == cfg.d_ff and peer.config.n_layer == cfg.num_layers
    assert r["n_params"] > count_params(cfg)["total"]


@pytest.mark.slow
def test_linear_tf_torch_loop_learns():
    pytest.importorskip("torch")
    from benchmarks import torch_linear_tf

    loop = torch_linear_tf.StatsLoop("adam", seed=0)
    for _ in range(101):
        loop.step()
    assert len(loop.eval_losses) == 3  # evaluated at steps 0, 50, 100
    assert len(loop.trajectory) == 101  # the parameters before every update, as the notebook keeps
    assert loop.eval_losses[-1] < 0.5 * loop.eval_losses[0]  # starts near E y^2 = 5


def test_linear_tf_statistics_algorithm_equals_notebook_layers():
    torch = pytest.importorskip("torch")
    from benchmarks import torch_linear_tf as t

    torch.set_default_dtype(torch.float64)
    try:
        gen = torch.Generator().manual_seed(0)
        z, _ = t.sample(gen, 8)
        for layers in (1, 2, 3):
            bc = 0.3 * torch.randn(layers, 1, 2, t.D, t.D, generator=gen)
            torch.testing.assert_close(
                t.stats_predict(bc, z), t.notebook_predict(bc, z), rtol=1e-12, atol=1e-12
            )
    finally:
        torch.set_default_dtype(torch.float32)


def test_torch_decoder_peer_matches_our_parameter_counts():
    torch = pytest.importorskip("torch")
    from benchmarks.decoder import random_batch
    from benchmarks.torch_decoder import TorchDecoderPeer

    for block in ("pre_ln", "sas_p"):
        cfg = model_config(block, "tiny")
        peer = TorchDecoderPeer(cfg, block, random_batch(cfg, 2), 2)
        assert peer.n_params == count_params(cfg)["total"]
        peer.warmup(1)
        # A first loss near log(vocab): the init is the suite's (N(0, 0.02²), zero queries)
        assert abs(peer.losses[0] - float(torch.log(torch.tensor(float(cfg.vocab_size))))) < 0.1
