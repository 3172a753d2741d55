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
    assert pairs.shape == (3,) and np.all(np.abs(pairs) <= 1 + 1e-6) and pairs[1] > pairs[0], pairs   # pair 1: a text with itself


def test_minilm_pooler_is_untrained():
    """The docs' claim: the checkpoint's pooler (what ``pooling="cls"`` reads) was never trained: its bias is
    exactly 0 and its kernel's singular values fill the Marchenko-Pastur range of an i.i.d. Gaussian matrix of
    its entry std (largest ~ 2 sqrt(384) std)."""
    p = bert.load_minilm().pooler["dense"]
    kernel = np.asarray(p["kernel"], np.float64)
    assert not np.any(np.asarray(p["bias"]))
    s = np.linalg.svd(kernel, compute_uv=False)
    edge = 2 * np.sqrt(384) * kernel.std()
    assert 0.95 < s[0] / edge < 1.02 and s[-1] < 0.01 * edge, (s[0], edge, s[-1])
