"""Experiment: few-shot fine-tuning of a pretrained transformer, LoRA vs Deep LoRA (Yaras et al. 2024,
arXiv 2406.04112), offline: all-MiniLM-L6-v2 (``lrjax.models.bert``) on Rotten Tomatoes sentiment or the Lee
document-similarity pairs (``lrjax.studies.few_shot``: tasks, targets, sampling).

Model: the pretrained encoder, ``pooling`` (``mean``, or ``cls``: the checkpoint's BERT pooler on [CLS]), a
fresh ``Dense`` head (2 logits, or 1 output for ``similarity``), ``head`` ``trained`` (at the adapter's rate)
or ``frozen`` at its random init; dropout ``dropout`` in training. Adapted: ``targets`` (a regex over
``query|key|value``, or ``all_dense``), every other weight frozen. ``method``:

- ``lora``: ``W0 + U V^T`` of rank ``rank``, no alpha/r (``lrjax.param.lora``, ``init=lora_init``: ``peft``,
  ``U ~ N(0, 1/m)``, ``V = 0``; ``dlt``, ``U = 0``, ``V ~ N(0, 1)``, the authors' vanilla LoRA, ``dlt/models.py``);
- ``deep_lora``: ``W0 + F_1 ... F_depth``, every factor eps-orthogonal (``eps``), of width ``deep_width``
  (``full``: ``min(m, n)``; ``rank``: ``rank``). With ``compress`` it is first built at full width, then
  compressed from one gradient of the seed's whole few-shot set (``analysis.compress_bound``) to width
  ``2 rank`` (``deep_width=full``) or ``rank`` (``deep_width=rank``, ``rank / 2`` directions from each of the
  two subspaces, the split of the authors' ``dlt/train.py``; they start from width ``max(m, n)`` and compress
  the side whose factor is square, lrjax from ``min(m, n)`` and the input side); its outer factors train at
  ``gamma * lr``;
- ``head_only``: no adapter, the head trained (a linear probe; needs ``head=trained``);
- ``none``: no adapter and no training: the frozen random head's held-out score (chance level), and what the
  frozen encoder carries (``frozen_references``): ridge readouts of its features, and on ``similarity`` the
  encoder's own sentence embeddings' cosine against the ratings (``zero_shot_pearson``).

Each seed draws its own ``samples`` training examples (``sampling``); ``seeds`` seeds train as one vmapped
program: AdamW (``adam_eps``, weight decay 0), minibatches of ``batch_size`` on the device, ``steps`` steps,
the rate decaying linearly from ``lr`` (0: lrjax's rates, LoRA 5e-4 and Deep LoRA 1e-4) to ``decay_ratio * lr``
over ``decay_steps`` steps and constant after (``decay_ratio = 1``: constant). Held-out: ``val_size``
examples (0: all) every ``eval_every`` steps. Inputs are truncated to ``max_length`` tokens.

Metrics: ``val_accuracy`` (sentiment) or ``val_pearson`` (similarity): final, one per seed, with ``_mean``,
``_std``, ``_initial``; ``train_loss_final`` (mean of the last 10 minibatch losses, per seed); ``learned_targets``
(per seed, how many adapted matrices *learned*: their final update's largest singular value is above ``1e-3`` of
the largest of any of the seed's updates; a Deep LoRA whose factors never leave their init stays at its init
product, ``eps^depth`` times an orthogonal matrix, which is not learning); ``update_rank`` (per seed, the median
over the matrices that learned of the numerical rank of the final update: singular values above ``1e-3`` of its
largest) and ``update_rank_by_target`` (per matrix, median over seeds, every matrix); ``update_scale_by_target``
(per matrix, median over seeds of the final update's largest singular value); ``alignment_mean`` (per record at
``alignment_steps``: the cosine of the smallest principal angle between the top-8 left singular subspace of each
update then and at the end, as the authors' ``misc_utils.cosine_angle``, mean over the (matrix, seed) pairs that
learned; 1 at the end by construction; two random 8-dimensional subspaces of R^384 give about 0.3; per matrix in
``trajectory.npz`` as ``alignment/<matrix>``), ``trainable_params``, ``outer_params``,
``ms_per_step``, ``peak_memory_mb``. Each seed's adapter is exported as a PEFT directory ``peft/seed<i>/``
(``lrjax.io.peft``; Deep LoRA merged to its width) with the head (``head.safetensors``, torch layout), when
PEFT export covers the targets (not for ``all_dense``: adapters on embeddings are not exported yet).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from lrjax import analysis, binding, dynamics
from lrjax.data import similarity, text
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.process import peak_memory_mb
from lrjax.harness.schema import Bool, Choice, Float, Int, Rule, Schema, Str
from lrjax.io import peft
from lrjax.models import bert
from lrjax.param import Adapter
from lrjax.studies import classification, recipe
from lrjax.studies import few_shot as fs
from lrjax.studies import frozen_readout as fr

RANK_RTOL = classification.RANK_RTOL   # numerical rank: singular values above this fraction of the largest
ALIGN_K = 8        # the top-k singular subspace whose early alignment with the final one is tracked
READOUT_SAMPLES = 300   # training examples of the larger linear readout (similarity: all 300 pairs)
LRJAX_LR = {"lora": 5e-4, "deep_lora": 1e-4, "head_only": 5e-4, "none": 0.0}   # lr = 0 (lrjax's protocol)
HIDDEN = 384
METRIC = {"sentiment": "accuracy", "similarity": "pearson"}


def _installed(task) -> bool:
    bert.minilm_dir()
    text.locate_sentiment() if task == "sentiment" else similarity.locate_similarity()
    return True


def _width(config) -> int:
    """The adapter's width after any compression (the rank its update can reach)."""
    if config.method == "lora":
        return config.rank
    return (2 * config.rank if config.deep_width == "full" else config.rank) if config.compress else (
        HIDDEN if config.deep_width == "full" else config.rank)


SCHEMA = Schema(
    method=Choice("lora", "deep_lora", "head_only", "none"), task=Choice(*fs.TASKS), rank=Int(min=1),
    samples=Int(min=2), seeds=Int(min=1), steps=Int(min=1, resume="grow"), lr=Float(ge=0), batch_size=Int(min=1),
    decay_ratio=Float(gt=0, le=1), decay_steps=Int(min=1), adam_eps=Float(gt=0), depth=Int(min=2),
    eps=Float(gt=0), deep_width=Choice("full", "rank"), compress=Bool(), gamma=Float(ge=0),
    lora_init=Choice("peft", "dlt"), targets=Str(), head=Choice("trained", "frozen"),
    pooling=Choice(*bert.POOLINGS), dropout=Float(ge=0, lt=1), sampling=Choice(*fs.SAMPLINGS),
    max_length=Int(min=4, max=bert.MAX_SEQ_LENGTH), val_size=Int(min=0), eval_every=Int(min=1), seed=Int(min=0),
    checkpoint_every=Int(min=0, resume="any"),
    checks=[Rule(("task",), _installed, "all-MiniLM-L6-v2 and the task's data must be installed"),
            Rule(("targets",), fs.targets_valid, "targets must be 'all_dense' or a regex matching some of "
                 "query|key|value"),
            Rule(("batch_size", "samples"), lambda b, n: b <= n, "batch_size must be <= samples"),
            Rule(("method", "head"), lambda m, h: m != "head_only" or h == "trained",
                 "method=head_only trains the head only: it needs head=trained"),
            Rule(("method", "rank", "deep_width", "compress"),
                 lambda m, r, w, c: m != "deep_lora" or not c or w == "full" or r % 2 == 0,
                 "compressing to width rank (deep_width=rank) takes rank/2 directions from each subspace: "
                 "rank must be even"),
            Rule(("rank", "method", "deep_width", "compress"),
                 lambda r, m, w, c: (2 * r if m == "deep_lora" and c and w == "full" else r) <= HIDDEN,
                 f"rank must be <= {HIDDEN} (Deep LoRA compressed at full width: 2 rank)"),
            Rule(("val_size", "task"), lambda v, t: v <= (fs.SENTIMENT_TEST if t == "sentiment" else fs.SIMILARITY_SPLIT),
                 f"val_size must be <= {fs.SENTIMENT_TEST} (sentiment) or {fs.SIMILARITY_SPLIT} (similarity); 0: all"),
            Rule(("eval_every", "steps"), lambda e, s: e <= s, "eval_every must be <= steps"),
            Rule(("samples", "task", "sampling"),
                 lambda n, t, smp: smp == "with_replacement" or n <= (2 * 4307 if t == "sentiment" else fs.SIMILARITY_SPLIT),
                 "balanced samples must be <= 8614 (sentiment: the smaller class has 4,307 training snippets) or "
                 f"<= {fs.SIMILARITY_SPLIT} (similarity: the training pairs)")],
)


def learning_rate(lr: float, config):
    """``lr`` at step 0, linearly down to ``decay_ratio * lr`` at ``decay_steps``, constant after (a fixed horizon,
    so a run resumed with more ``steps`` continues the same schedule)."""
    if config.decay_ratio == 1.0:
        return lr
    return optax.linear_schedule(lr, config.decay_ratio * lr, config.decay_steps)


def describe(config) -> str:
    """The adapter in a few words, for titles and progress: ``lora r=8``, ``deep_lora width=384``,
    ``deep_lora width=8 compressed``."""
    if config.method == "lora":
        return f"lora r={config.rank}"
    if config.method == "deep_lora":
        return f"deep_lora width={_width(config)}" + (" compressed" if config.compress else "")
    return config.method


def adapter_spec(config) -> str:
    if config.method == "lora":
        return f"lora({config.rank}, init={config.lora_init!r})"
    width = "" if config.deep_width == "full" or config.compress else f", width={config.rank}"
    return f"deep_lora({config.depth}{width}, scale={config.eps})"


def rules(config) -> list[tuple[str, str]]:
    """``(regex, spec)``: the adapter on the targets, the head dense or frozen, everything else frozen."""
    out = [] if config.method in ("head_only", "none") else [(fs.target_pattern(config.targets), adapter_spec(config))]
    return out + [("head/.*", "dense()" if config.head == "trained" and config.method != "none" else "frozen()"),
                  (".*", "frozen()")]


def updates(bound: binding.Bound) -> dict:
    """``{weight path: Delta W}`` of every adapter leaf."""
    return {name: p.delta(bound.theta[name]) for name, p in bound.params if isinstance(p, Adapter)}


def top_left(w: jax.Array, k: int) -> jax.Array:
    """``(m, k)``: the top-``k`` left singular vectors of ``w (m, n)`` from the smaller Gram matrix (``w w^T``
    when ``m <= n``, else ``u = w v / s`` from ``w^T w``); zero columns where ``s = 0``."""
    m, n = w.shape
    if m <= n:
        return jnp.linalg.eigh(w @ w.T)[1][:, ::-1][:, :k]
    lam, v = jnp.linalg.eigh(w.T @ w)
    lam, v = lam[::-1][:k], v[:, ::-1][:, :k]
    s = jnp.sqrt(jnp.maximum(lam, 0.0))
    return (w @ v) / jnp.where(s > 0, s, 1.0) * (s > 0)


def update_spectra(bound: binding.Bound) -> dict:
    """Per adapter update: ``{"<path>/sv": singular values, "<path>/top": top-ALIGN_K left vectors}``. (A full
    SVD with vectors of every ``all_dense`` update, the 30522 x 384 word embeddings among them, in one vmapped
    program never returned on this 2-core CPU with jax 0.10.2; the values alone and a Gram matrix do.)"""
    out = {}
    for name, w in updates(bound).items():
        out[f"{name}/sv"] = jnp.linalg.svd(w, compute_uv=False)
        out[f"{name}/top"] = top_left(w, ALIGN_K)
    return out


def _records(res, kind: str) -> dict:
    """``{weight path: (seeds, records, ...)}`` of the ``update`` recorder's ``kind`` (``sv`` or ``top``)."""
    return {k[len("update/"):-len(kind) - 1]: np.asarray(v) for k, v in res.records.items()
            if k.startswith("update/") and k.endswith(f"/{kind}")}


def final_update_ranks(spectra: dict) -> tuple[list, np.ndarray, np.ndarray]:
    """``(names, ranks, learned)`` from ``{matrix: (seeds, records, k)}`` singular values: per matrix and seed
    ``(matrices, seeds)``, the final update's numerical rank (values above ``RANK_RTOL`` of its largest) and
    whether it learned (its largest value above ``RANK_RTOL`` of the largest of any of the seed's updates)."""
    names = list(spectra)
    k = max(np.shape(v)[-1] for v in spectra.values())
    final = np.stack([np.pad(np.asarray(spectra[n])[:, -1], ((0, 0), (0, k - np.shape(spectra[n])[-1])))
                      for n in names])                                   # (matrices, seeds, k)
    ranks = np.asarray(analysis.numerical_rank(final, RANK_RTOL))
    top = final[..., 0]
    return names, ranks, (top > RANK_RTOL * top.max(0)) & (top > 0)


def build(config):
    """``(model, net, data, init)``: the encoder, the classifier module, the seeds' data and ``init(key, x, y)``
    returning one seed's ``Bound`` (compressed when asked)."""
    model = bert.load_minilm()
    data = fs.load(config.task, model, samples=config.samples, seeds=config.seeds, seed=config.seed,
                   sampling=config.sampling, max_length=config.max_length, val_size=config.val_size)
    net = bert.SentenceClassifier(model.config, data.outputs, config.pooling, config.dropout)
    if config.pooling == "cls" and model.pooler is None:
        raise ValueError("pooling=cls needs the checkpoint's pooler weights; this checkpoint has none")

    def init(k, xs, ys):
        head = jax.tree.map(lambda a: a.astype(jnp.float32), nn.Dense(data.outputs).init(
            jax.random.fold_in(k, 0), jnp.zeros((1, HIDDEN)))["params"])
        tree = {"bert": model.params, "head": head} | ({"pooler": model.pooler} if config.pooling == "cls" else {})
        b = binding.bind(tree, rules(config), key=jax.random.fold_in(k, 1))
        if config.method == "deep_lora" and config.compress:
            half = config.deep_width == "rank"
            b = analysis.compress_bound(b, lambda bb: objective(net, config, bb, {"x": xs, "y": ys}),
                                        config.rank // 2 if half else config.rank, config.rank if half else None)
        return b
    return model, net, data, init


def objective(net, config, b, batch, key=None):
    """The task's loss of a minibatch; dropout (``train``) when a key is given and ``dropout > 0``."""
    train = key is not None and config.dropout > 0
    out = net.apply({"params": binding.materialize(b)}, batch["x"], train=train,
                    rngs={"dropout": key} if train else None)
    return fs.loss(config.task, out, batch["y"])


def run(config, ctx) -> dict:
    t0 = time.perf_counter()
    model, net, data, init = build(config)
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(config.seed), s))(jnp.arange(config.seeds))
    bounds = jax.jit(jax.vmap(init))(keys, data.x, data.y)
    one = jax.tree.map(lambda a: a[0], bounds)
    counts = binding.count_params(one)
    lr = config.lr or LRJAX_LR[config.method]
    metric = METRIC[config.task]

    def validate(b, d):  # the held-out set in one chunk (<= 2,551 inputs per seed fit in memory)
        return fs.evaluate(config.task, net.apply({"params": binding.materialize(b)}, d["val"]["x"]), d["val"]["y"])

    reps = lambda a: np.broadcast_to(a, (config.seeds, *a.shape))  # noqa: E731
    arrays = {"train": {"x": data.x, "y": data.y}, "val": {"x": reps(data.xv), "y": reps(data.yv)}}
    setup_s = time.perf_counter() - t0
    if config.method == "none":
        return untrained(jax.jit(jax.vmap(validate))(bounds, arrays), metric, config, model, data, setup_s)
    tr = recipe.train(lambda b, batch, key=None: objective(net, config, b, batch, key), bounds,
                      optax.adamw(learning_rate(lr, config), eps=config.adam_eps, weight_decay=0.0), config.steps,
                      data=arrays, roles=binding.roles(one), outer_lr_scale=config.gamma,
                      evaluation=("val", validate), evaluation_key=f"val/{metric}",
                      records={"update": update_spectra}, batched=True, data_batched=True,
                      batches=dynamics.Minibatches(config.batch_size),
                      key=jax.vmap(lambda k: jax.random.fold_in(k, 2))(keys), record_every=config.eval_every,
                      chunk_size=config.eval_every, checkpoint=ctx.checkpoints(),
                      label=f"{describe(config)} n={config.samples} {config.task}")
    res = tr.result
    score = np.asarray(tr.evaluation)                                    # (seeds, records)
    spectra = _records(res, "sv")
    final = {k: v[:, -1] for k, v in spectra.items()}                    # (seeds, k)
    by_target = {k: r["numerical_rank_median"] for k, r in classification.update_ranks(spectra).items()}
    names, ranks, learned = final_update_ranks(spectra) if final else ([], np.zeros((0, config.seeds)), None)
    per_seed = [float(np.median(ranks[learned[:, s], s])) if learned[:, s].any() else float("nan")
                for s in range(config.seeds)] if final else []
    tops = _records(res, "top")
    align = alignment({k: tops[k] for k in names}) if final else np.zeros((0, config.seeds, score.shape[1]))
    exported = ("not exported: no adapter (head_only)" if config.method == "head_only" else
                "not exported: PEFT export of adapters on embeddings (all_dense) is not implemented"
                if config.targets == "all_dense" else export(ctx.workdir / "peft", res.params, config))
    ctx.save_arrays(step=res.records["step"], **{f"val_{metric}": score}, train_loss=res.scalars["loss"],
                    **{f"update_sv/{k}": v for k, v in spectra.items()},
                    **{f"alignment/{k}": a for k, a in zip(names, align)})
    plot(res, score, final, dict(zip(names, align)), learned, ranks, config, ctx.figure("few_shot"))
    loss = np.asarray(res.scalars["loss"])
    return {"method": config.method, "task": config.task, "rank": config.rank, "samples": config.samples,
            "lr": lr, f"val_{metric}": score[:, -1].tolist(), f"val_{metric}_mean": float(score[:, -1].mean()),
            f"val_{metric}_std": float(score[:, -1].std()), f"val_{metric}_initial": score[:, 0].tolist(),
            "val_size": int(len(data.yv)), "tokens": int(data.x.shape[-1]),
            "train_loss_final": loss[:, -10:].mean(1).tolist(), "update_rank": per_seed,
            "learned_targets": learned.sum(0).tolist() if final else [],
            "update_rank_by_target": by_target,
            "update_scale_by_target": {k: float(np.median(v[:, 0])) for k, v in final.items()},
            "alignment_steps": np.asarray(res.records["step"]).tolist(),
            "alignment_mean": align[learned].mean(0).tolist() if final else [],
            "trainable_params": counts["trainable"] + (counts["outer"] if config.gamma > 0 else 0),
            "outer_params": counts["outer"], "ms_per_step": res.ms_per_step,
            "setup_s": setup_s, "peft": exported, "peak_memory_mb": peak_memory_mb(),
            "device": jax.devices()[0].device_kind}


def untrained(scores: dict, metric: str, config, model, data, setup_s: float) -> dict:
    """The metrics of ``method=none``: the frozen random head on the pretrained encoder, no training, and the
    frozen encoder's references (``frozen_references``)."""
    v = np.asarray(scores[metric])
    return frozen_references(config, model, data) | {
        "method": "none", "task": config.task, "samples": config.samples, "lr": 0.0,
        f"val_{metric}": v.tolist(), f"val_{metric}_mean": float(v.mean()), f"val_{metric}_std": float(v.std()),
        f"val_{metric}_initial": v.tolist(), "val_size": int(len(data.yv)), "tokens": int(data.x.shape[-1]),
        "update_rank": [0.0] * config.seeds, "trainable_params": 0, "setup_s": setup_s,
        "peak_memory_mb": peak_memory_mb(), "device": jax.devices()[0].device_kind}


def frozen_references(config, model, data) -> dict:
    """What the frozen encoder carries (``lrjax.studies.frozen_readout``), on the run's held-out set.

    ``linear_readout_<metric>``: per feature (``pooler``, ``cls``, ``mean``), one value per seed: ridge on the
    seed's own training draw at the penalty of ``fr.LAMBDAS`` best for the seeds' mean held-out score
    (``linear_readout_lambda``). The penalty is picked on the held-out labels, so the score is optimistic.
    ``linear_readout_300_<metric>``, ``linear_readout_300_lambda``: the same from a ``balanced`` draw of
    ``READOUT_SAMPLES`` training examples (similarity: all 300 pairs). On ``similarity`` also
    ``zero_shot_pearson`` (each document on its own, 256 tokens), ``zero_shot_pearson_truncated`` (each
    document cut to ``zero_shot_tokens``, the share of ``max_length`` it gets in a pair) and
    ``segment_cosine_pearson`` (the cosine of the two segments' mean states inside the joint pass)."""
    metric, task = METRIC[config.task], config.task
    seeds, n = data.y.shape
    train = fr.frozen_features(model, data.x.reshape(seeds * n, *data.x.shape[2:]))
    val = fr.frozen_features(model, data.xv)
    big = fs.load(task, model, samples=READOUT_SAMPLES, seeds=1, seed=config.seed, sampling="balanced",
                  max_length=config.max_length, val_size=config.val_size)
    many = fr.frozen_features(model, big.x[0])
    out = {f"linear_readout_{metric}": {}, "linear_readout_lambda": {},
           f"linear_readout_{READOUT_SAMPLES}_{metric}": {}, f"linear_readout_{READOUT_SAMPLES}_lambda": {}}

    def scores(f, y, fv) -> np.ndarray:   # (lambdas,): held-out scores on fv of ridge fits on f (n, d), y (n,)
        return np.array([fr.ridge_readout(task, f, y, fv, data.yv, lam) for lam in fr.LAMBDAS])

    for kind in (k for k in fr.FEATURES if k in val):
        own = np.stack([scores(train[kind][s * n:(s + 1) * n], data.y[s], val[kind]) for s in range(seeds)])
        best = int(np.argmax(own.mean(0)))
        out[f"linear_readout_{metric}"][kind] = own[:, best].tolist()
        out["linear_readout_lambda"][kind] = fr.LAMBDAS[best]
        wide = scores(many[kind], big.y[0], val[kind])
        out[f"linear_readout_{READOUT_SAMPLES}_{metric}"][kind] = float(wide.max())
        out[f"linear_readout_{READOUT_SAMPLES}_lambda"][kind] = fr.LAMBDAS[int(np.argmax(wide))]
    if task == "similarity":
        tokens = (config.max_length - 3) // 2 + 2       # [CLS] + half of the pair's text budget + [SEP]
        out |= {"zero_shot_pearson": fr.zero_shot_pearson(config.val_size), "zero_shot_tokens": tokens,
                "zero_shot_pearson_truncated": fr.zero_shot_pearson(config.val_size, tokens),
                "segment_cosine_pearson": float(fs.pearson(jnp.asarray(val["segment_cosine"]), jnp.asarray(data.yv)))}
    return out


def alignment(tops: dict) -> np.ndarray:
    """``(targets, seeds, records)``: cosine of the smallest principal angle between the top-``ALIGN_K`` left
    singular subspace of each update at each record and at the last one (1 where they share a direction)."""
    out = []
    for q in tops.values():                                                  # (seeds, records, 384, k)
        out.append(np.linalg.svd(np.swapaxes(q, -1, -2) @ q[:, -1:], compute_uv=False)[..., 0])
    return np.stack(out)


def export(folder: Path, bounds, config) -> dict:
    """One PEFT directory per seed (module docstring); returns seed 0's export summary."""
    from safetensors.numpy import save_file
    summary = None
    for s in range(config.seeds):
        b = jax.tree.map(lambda a: np.asarray(a[s]), bounds)
        out = peft.export(folder / f"seed{s}", b, bert.hf_module,
                          rank=_width(config),
                          base_model_name_or_path="sentence-transformers/all-MiniLM-L6-v2")
        head = binding.materialize(b)["head"]
        save_file({"weight": np.ascontiguousarray(np.asarray(head["kernel"]).T), "bias": np.asarray(head["bias"])},
                  str(folder / f"seed{s}" / "head.safetensors"))
        summary = summary or out
    return summary


def plot(res, acc, final, align, learned, ranks, config, path):
    """Four panels: training loss, held-out score, the final updates' spectra (seed 0, every matrix scaled by
    the largest value of any update, so a matrix that did not learn sits near the bottom), and the alignment
    of the updates that learned (per matrix, mean over the seeds where it learned); ``learned``, ``ranks``:
    ``final_update_ranks``'s ``(matrices, seeds)`` arrays, in ``final``'s order."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    loss = np.asarray(res.scalars["loss"])
    for s in range(loss.shape[0]):
        axes[0].plot(np.arange(1, loss.shape[1] + 1), loss[s], lw=0.8, alpha=0.7)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training minibatch loss")
    axes[0].set_yscale("log")
    steps = np.asarray(res.records["step"])
    for s in range(acc.shape[0]):
        axes[1].plot(steps, acc[s], "o-", ms=3)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel(f"held-out {METRIC[config.task]}")
    axes[1].set_title(f"{describe(config)}, {config.samples} samples: "
                      f"{acc[:, -1].mean():.3f} +- {acc[:, -1].std():.3f}", fontsize=9)
    many = len(final) > 12           # all_dense: 39 matrices, drawn without a legend
    scale = max((float(sv[0, 0]) for sv in final.values()), default=1.0) or 1.0
    for i, (name, sv) in enumerate(final.items()):
        short = re.sub(r"bert/encoder/layer_(\d+)/(attention/self/)?(.*)/kernel", r"L\1 \3", name)
        style = {"color": "tab:blue" if learned[i, 0] else "tab:gray", "alpha": 0.4} if many else {"label": short}
        axes[2].semilogy(np.arange(1, sv.shape[1] + 1), np.maximum(sv[0] / scale, 1e-30), ".-", ms=3, lw=0.8,
                         **style)
    # x: twice the largest numerical rank that learned (>= 8); y: down to the smallest value shown (a Deep LoRA
    # that did not learn sits at its eps^depth init product, ~1e-9 of its scale)
    xmax = max(8, 2 * int(ranks[learned[:, 0], 0].max(initial=1))) if final else 8
    shown = np.concatenate([sv[0, :xmax] / scale for sv in final.values()]) if final else np.ones(1)
    axes[2].set_xlim(0.5, xmax + 0.5)
    axes[2].set_ylim(max(1e-12, min(1e-6, shown[shown > 0].min(initial=1.0) / 3)), 2)
    axes[2].set_xlabel("index")
    axes[2].set_ylabel("singular value / largest of any update (seed 0)")
    n_learned = int(learned[:, 0].sum()) if final else 0
    axes[2].set_title(f"final Delta W, seed 0: {n_learned}/{len(final)} learned"
                      + (" (gray: not)" if many and n_learned < len(final) else ""), fontsize=9)
    if final and not many:
        axes[2].legend(fontsize=6, ncol=2)
    pairs = []
    for i, a in enumerate(align.values()):                                # a: (seeds, records)
        if learned[i].any():
            axes[3].plot(steps, a[learned[i]].mean(0), lw=0.8)
            pairs.append(a[learned[i]])
    if pairs:
        axes[3].plot(steps, np.concatenate(pairs).mean(0), "k-o", ms=3, lw=2, label="mean (alignment_mean)")
        axes[3].legend(fontsize=7)
    axes[3].set_xlabel("step")
    axes[3].set_ylabel(f"cos smallest angle, top-{ALIGN_K} subspace: step t vs final")
    axes[3].set_title(f"alignment: the {len(pairs)}/{len(align)} matrices that learned", fontsize=9)
    save_figure(fig, path)
