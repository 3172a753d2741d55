"""The image classifiers (VGG, ViT) and the update-spectra rank measures."""
import numpy as np
import pytest


def test_update_rank_over_time_counts_and_shares():
    from experiments.update_spectra import rank_over_time
    sv = np.array([[[4.0, 2.0, 1e-4, 0.0], [3.0, 0.0, 0.0, 0.0]]])          # (seeds=1, T=2, k=4)
    out = rank_over_time(sv, rtol=1e-3, top_k=1)
    assert out["numerical_rank"] == [2.0, 1.0]                           # 1e-4 < 1e-3 x 4
    np.testing.assert_allclose(out["top_share"], [16 / (16 + 4 + 1e-8), 1.0])
    # energy 16 + 4 + 1e-8: 0.9 of it needs both large values; 0.7 only the first; a single value holds all
    assert out["energy_rank"] == [2.0, 1.0]
    assert rank_over_time(sv, rtol=1e-3, top_k=1, energy_fraction=0.7)["energy_rank"] == [1.0, 1.0]
    flat = np.ones((1, 1, 10))                                           # equal values: 9 of 10 hold 0.9
    assert rank_over_time(flat, rtol=1e-3, top_k=1, energy_fraction=0.9)["energy_rank"] == [9.0]


def test_vit_and_vgg_shapes_and_two_dimensional_kernels():
    import jax
    from lrjax import models
    from lrjax.studies import classification
    x = np.zeros((2, 28, 28, 1), np.float32)
    for model in (models.ViT(dim=16, depth=2, heads=4, patch=7, mlp=32), models.VGG((4, 8), (16, 12))):
        params = model.init(jax.random.key(0), x)["params"]
        assert model.apply({"params": params}, x).shape == (2, 10)
        kernels = classification.kernels_of(params)
        assert all(k.ndim in (2, 4) for k in kernels.values())
    assert classification.kernels_of(models.ViT(16, 2, 4, 7, 32).init(jax.random.key(0), x)["params"])[
        "block_1/mlp_out/kernel"].shape == (32, 16)
    with pytest.raises(ValueError, match="patches"):
        models.ViT(patch=5).init(jax.random.key(0), x)
