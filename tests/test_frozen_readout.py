"""The frozen encoder's references for few-shot runs (``lrjax.studies.frozen_readout``)."""
import numpy as np

from lrjax.models import bert
from lrjax.studies import frozen_readout as fr

SENTENCES = ["A man is playing a guitar.", "The stock market fell sharply today.", "A cat sleeps on the sofa."]


def test_ridge_readout_finds_a_linear_signal_and_not_noise():
    rng = np.random.default_rng(0)
    w = rng.normal(size=20)
    f, fv = rng.normal(size=(40, 20)), rng.normal(size=(500, 20))
    y, yv = f @ w + 3.0, fv @ w + 3.0                      # an offset: the readout centres
    assert fr.ridge_readout("similarity", f, y, fv, yv, 1e-2) > 0.99
    assert abs(fr.ridge_readout("similarity", f, rng.normal(size=40), fv, yv, 1e-2)) < 0.15   # labels unrelated
    f = rng.normal(size=(400, 20))                          # classes from signs need more examples than values
    labels, vlabels = (f @ w > 0).astype(int), (fv @ w > 0).astype(int)
    assert fr.ridge_readout("sentiment", f, labels, fv, vlabels, 1.0) > 0.9
    assert fr.ridge_readout("sentiment", f, 1 - labels, fv, vlabels, 1.0) < 0.1               # signs follow labels


def test_frozen_features_are_the_encoder_readouts():
    """``mean`` is the sentence embedding before normalisation; ``pooler`` is tanh of the checkpoint's pooler
    on ``cls``; a pair's segment cosine is that of its two halves' states, in [-1, 1]."""
    model = bert.load_minilm()
    f = fr.frozen_features(model, model.packed(SENTENCES, 32))
    assert {k: f[k].shape for k in fr.FEATURES} == {k: (3, 384) for k in fr.FEATURES}
    unit = f["mean"] / np.linalg.norm(f["mean"], axis=1, keepdims=True)
    np.testing.assert_allclose(unit, bert.sentence_embeddings(SENTENCES, max_length=32), atol=1e-5)
    p = model.pooler["dense"]
    np.testing.assert_allclose(f["pooler"], np.tanh(f["cls"] @ np.asarray(p["kernel"]) + np.asarray(p["bias"])),
                               atol=1e-5)
    pairs = fr.frozen_features(model, model.packed_pairs(SENTENCES, SENTENCES[::-1], 48))["segment_cosine"]
    assert pairs.shape == (3,) and np.all(np.abs(pairs) <= 1 + 1e-6), pairs
    assert pairs[1] > pairs[0], pairs                                   # pair 1 is a text with itself


def _quarter_circle_gap(kernel: np.ndarray) -> float:
    """Largest gap between the 10/25/50/75/90% quantiles of a square kernel's singular values, scaled by
    ``std sqrt(n)``, and those of the quarter-circle law ``(1/pi) sqrt(4 - x^2)`` on [0, 2] (an i.i.d. matrix)."""
    x = np.linspace(0, 2, 20001)
    cdf = (x * np.sqrt(4 - x ** 2) / 2 + 2 * np.arcsin(x / 2)) / np.pi
    q = np.array([0.1, 0.25, 0.5, 0.75, 0.9])
    s = np.linalg.svd(kernel, compute_uv=False) / (kernel.std() * np.sqrt(len(kernel)))
    return float(np.max(np.abs(np.quantile(s, q) - np.interp(q, cdf, x))))


def test_minilm_pooler_shows_no_trace_of_training():
    """The docs' claim: the checkpoint's pooler (what ``pooling="cls"`` reads) cannot be told from its random
    init: its bias is exactly 0 (any gradient step moves it), its entries have the excess kurtosis of a
    Gaussian, and its singular values follow the quarter-circle law of an i.i.d. matrix up to the edge
    ``2 sqrt(384) std``. A trained kernel of the same checkpoint (layer 0's query) fails the edge."""
    model = bert.load_minilm()
    p = model.pooler["dense"]
    kernel = np.asarray(p["kernel"], np.float64)
    assert not np.any(np.asarray(p["bias"]))
    z = (kernel - kernel.mean()) / kernel.std()
    assert abs(np.mean(z ** 4) - 3) < 0.1, np.mean(z ** 4) - 3
    assert _quarter_circle_gap(kernel) < 0.02, _quarter_circle_gap(kernel)
    edge = lambda k: np.linalg.svd(k, compute_uv=False)[0] / (2 * np.sqrt(len(k)) * k.std())  # noqa: E731
    assert 0.95 < edge(kernel) < 1.02, edge(kernel)
    trained = np.asarray(model.params["encoder"]["layer_0"]["attention"]["self"]["query"]["kernel"], np.float64)
    assert edge(trained) > 1.2, edge(trained)
