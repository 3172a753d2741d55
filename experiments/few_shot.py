"""Experiment: few-shot fine-tuning of a pretrained transformer, LoRA vs Deep LoRA (Yaras et al. 2024,
arXiv 2406.04112), offline: all-MiniLM-L6-v2 (``lrjax.models.bert``) on Rotten Tomatoes sentiment
(``lrjax.data.text``).

Model: the pretrained encoder, mean pooling, a fresh ``Dense(2)`` head (trained densely). Adapted: the
``query`` and ``value`` kernels of every layer's self-attention (``targets``: a regex over ``query|key|value``), every other
weight frozen. ``method``:

- ``lora``: ``W0 + U V^T`` of rank ``rank`` (``lrjax.param.lora``: ``U ~ N(0, 1/m)``, ``V = 0``, no alpha/r;
  depth 2 as the authors' vanilla LoRA);
- ``deep_lora``: ``W0 + F_1 ... F_depth``, full width ``384``, eps-orthogonal (``eps``); with ``compress``
  (default) compressed from one gradient of the seed's whole few-shot set to width ``2 rank``
  (``analysis.compress_bound``), its outer factors trained at ``gamma * lr`` (the discrepant rate).

Each seed draws its own ``samples`` training snippets (half per class, ``text.few_shot``); ``seeds`` seeds
train as one vmapped program: Adam (``adam_eps``), minibatches of ``batch_size`` (the authors: 1) on the
device, ``steps`` steps, the learning rate decaying linearly from ``lr`` to ``decay_ratio * lr`` over the first
``decay_steps`` steps and constant after (the authors' schedule: 0.1 over their 200 steps). Validation:
``val_size`` snippets of the fixed test split (0: all 2,551), accuracy every ``eval_every`` steps.
Sentences are truncated to ``max_length`` tokens.

Metrics: ``val_accuracy`` (final, one per seed), ``val_accuracy_mean``/``_std``, ``val_accuracy_initial``
(the untrained head), ``train_loss_final`` (mean of the last 10 minibatch losses, per seed),
``update_rank`` (per target kernel, median over seeds of the numerical rank of the final update:
singular values above ``1e-3`` of the largest), ``alignment_mean`` (per record, ``alignment_steps``: the cosine of the smallest principal angle between
the top-8 left singular subspace of each update at that step and at the end, mean over kernels and
seeds; LoRA's update is 0 at step 0, so its first value is meaningless; two random 8-dimensional subspaces
of R^384 give about 0.3), ``trainable_params`` (the adapters' trained leaves and the head; outer factors
only when ``gamma > 0``), ``outer_params``, ``ms_per_step``, ``peak_memory_mb`` (``lrjax.harness.process.peak_memory_mb``:
the peak so far). Every seed's adapter
is exported as a PEFT directory ``peft/seed<i>/`` (``lrjax.io.peft``; Deep LoRA merged to rank ``2 rank``) with
the head beside it (``head.safetensors``: ``weight (2, 384)``, ``bias (2,)``, torch layout).
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

from lrjax import analysis, binding, dynamics, tasks
from lrjax.data import text
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.process import peak_memory_mb
from lrjax.harness.schema import Bool, Choice, Float, Int, Rule, Schema, Str
from lrjax.io import peft
from lrjax.models import bert
from lrjax.param import Adapter
from lrjax.studies import classification, recipe

RANK_RTOL = classification.RANK_RTOL   # numerical rank: singular values above this fraction of the largest
ALIGN_K = 8        # the top-k singular subspace whose early alignment with the final one is tracked
DEFAULT_LR = {"lora": 5e-4, "deep_lora": 1e-4}   # the authors' few-shot learning rates (depth 2 / depth 3)
HIDDEN = 384
VAL_SNIPPETS = 2551   # the sentiment test split


def _installed(_method) -> bool:
    bert.minilm_dir()
    text.locate_sentiment()
    return True


def _targets_match(targets) -> bool:
    try:
        re.compile(targets)
    except re.error:
        return False
    return any(re.fullmatch(targets, name) for name in ("query", "key", "value"))


SCHEMA = Schema(
    method=Choice("lora", "deep_lora"), rank=Int(min=1), samples=Int(min=2), seeds=Int(min=1),
    steps=Int(min=1, resume="grow"), lr=Float(ge=0), batch_size=Int(min=1), decay_ratio=Float(gt=0, le=1),
    decay_steps=Int(min=1), adam_eps=Float(gt=0), depth=Int(min=2), eps=Float(gt=0),
    compress=Bool(), gamma=Float(ge=0), targets=Str(), max_length=Int(min=4, max=bert.MAX_SEQ_LENGTH),
    val_size=Int(min=0), eval_every=Int(min=1), seed=Int(min=0), checkpoint_every=Int(min=0, resume="any"),
    checks=[Rule(("method",), _installed, "all-MiniLM-L6-v2 and the sentiment data must be installed"),
            Rule(("targets",), _targets_match, "targets must be a regex matching some of query|key|value"),
            Rule(("batch_size", "samples"), lambda b, n: b <= n, "batch_size must be <= samples"),
            Rule(("rank", "method"), lambda r, m: (2 * r if m == "deep_lora" else r) <= HIDDEN,
                 f"rank must be <= {HIDDEN} (Deep LoRA: the compressed width 2 rank)"),
            Rule(("val_size",), lambda v: v <= VAL_SNIPPETS, f"val_size must be <= {VAL_SNIPPETS} (0: all)"),
            Rule(("eval_every", "steps"), lambda e, s: e <= s, "eval_every must be <= steps"),
            Rule(("samples",), lambda n: n <= 2 * 4307, "samples must be <= 8614 (the smaller class has 4,307 "
                 "training snippets)")],
)


def learning_rate(lr: float, config):
    """``lr`` at step 0, linearly down to ``decay_ratio * lr`` at ``decay_steps``, constant after (a fixed horizon,
    so a run resumed with more ``steps`` continues the same schedule)."""
    if config.decay_ratio == 1.0:
        return lr
    return optax.linear_schedule(lr, config.decay_ratio * lr, config.decay_steps)


def adapter_spec(config) -> str:
    return f"lora({config.rank})" if config.method == "lora" else f"deep_lora({config.depth}, scale={config.eps})"


def rules(config) -> list[tuple[str, str]]:
    """``(regex, spec)``: the adapter on the target kernels, the head dense, everything else frozen."""
    return [(rf"bert/encoder/layer_\d+/attention/self/({config.targets})/kernel", adapter_spec(config)),
            ("head/.*", "dense()"), (".*", "frozen()")]


def updates(bound: binding.Bound) -> dict:
    """``{kernel path: Delta W}`` of every adapter leaf."""
    return {name: p.delta(bound.theta[name]) for name, p in bound.params if isinstance(p, Adapter)}


def update_spectra(bound: binding.Bound) -> dict:
    """One SVD per adapter update: ``{"<path>/sv": singular values, "<path>/top": top-ALIGN_K left vectors}``."""
    out = {}
    for name, w in updates(bound).items():
        u, sv, _ = jnp.linalg.svd(w, full_matrices=False)
        out[f"{name}/sv"], out[f"{name}/top"] = sv, u[:, :ALIGN_K]
    return out


def _records(res, kind: str) -> dict:
    """``{kernel path: (seeds, records, ...)}`` of the ``update`` recorder's ``kind`` (``sv`` or ``top``)."""
    return {k[len("update/"):-len(kind) - 1]: np.asarray(v) for k, v in res.records.items()
            if k.startswith("update/") and k.endswith(f"/{kind}")}


def run(config, ctx) -> dict:
    t0 = time.perf_counter()
    model = bert.load_minilm()
    net = bert.SentenceClassifier(model.config, 2)
    texts, labels = text.load_sentiment("train")
    vtexts, vlabels = text.load_sentiment("test")
    val = np.sort(np.random.default_rng(1).permutation(len(vtexts))[:config.val_size or len(vtexts)])
    xv, yv = model.packed([vtexts[i] for i in val], config.max_length), vlabels[val]
    picks = [text.few_shot(labels, config.samples, config.seed * 10_000 + s) for s in range(config.seeds)]
    x = np.stack([model.packed([texts[i] for i in p], config.max_length) for p in picks])
    y = np.stack([labels[p] for p in picks])
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(config.seed), s))(jnp.arange(config.seeds))

    def apply(b, xb):
        return net.apply({"params": binding.materialize(b)}, xb)

    def objective(b, batch, key=None):
        return tasks.cross_entropy(apply(b, batch["x"]), batch["y"])

    def init(k, xs, ys):
        head = jax.tree.map(lambda a: a.astype(jnp.float32),
                            nn.Dense(2).init(jax.random.fold_in(k, 0), jnp.zeros((1, HIDDEN)))["params"])
        b = binding.bind({"bert": model.params, "head": head}, rules(config), key=jax.random.fold_in(k, 1))
        if config.method == "deep_lora" and config.compress:
            b = analysis.compress_bound(b, lambda bb: objective(bb, {"x": xs, "y": ys}), config.rank)
        return b

    bounds = jax.jit(jax.vmap(init))(keys, x, y)
    one = jax.tree.map(lambda a: a[0], bounds)
    counts = binding.count_params(one)
    lr = config.lr or DEFAULT_LR[config.method]
    reps = lambda a: np.broadcast_to(a, (config.seeds, *a.shape))  # noqa: E731
    data = {"train": {"x": x, "y": y}, "val": {"x": reps(xv), "y": reps(yv)}}

    def validate(b, d):  # the validation set in one chunk (<= 2,551 snippets per seed fit in memory)
        return tasks.evaluate(apply, b, d["val"]["x"], d["val"]["y"], chunk=len(yv))

    setup_s = time.perf_counter() - t0
    tr = recipe.train(objective, bounds, optax.adam(learning_rate(lr, config), eps=config.adam_eps), config.steps,
                      data=data, roles=binding.roles(one), outer_lr_scale=config.gamma, evaluation=("val", validate),
                      evaluation_key="val/accuracy", records={"update": update_spectra}, batched=True,
                      data_batched=True, batches=dynamics.Minibatches(config.batch_size),
                      key=jax.vmap(lambda k: jax.random.fold_in(k, 2))(keys), record_every=config.eval_every,
                      chunk_size=config.eval_every, checkpoint=ctx.checkpoints(),
                      label=f"{config.method} r={config.rank} n={config.samples}")
    res = tr.result
    acc = np.asarray(tr.evaluation)                                      # (seeds, records)
    spectra = _records(res, "sv")
    final = {k: v[:, -1] for k, v in spectra.items()}                    # (seeds, 384)
    ranks = {k: r["numerical_rank_median"] for k, r in classification.update_ranks(spectra).items()}
    align = alignment(_records(res, "top"))
    exported = export(ctx.workdir / "peft", res.params, config)
    ctx.save_arrays(step=res.records["step"], val_accuracy=acc, train_loss=res.scalars["loss"],
                    **{f"update_sv/{k}": v for k, v in spectra.items()})
    plot(res, acc, final, align, config, ctx.figure("few_shot"))
    loss = np.asarray(res.scalars["loss"])
    return {"method": config.method, "rank": config.rank, "samples": config.samples, "lr": lr,
            "val_accuracy": acc[:, -1].tolist(), "val_accuracy_mean": float(acc[:, -1].mean()),
            "val_accuracy_std": float(acc[:, -1].std()), "val_accuracy_initial": acc[:, 0].tolist(),
            "val_size": int(len(yv)), "train_loss_final": loss[:, -10:].mean(1).tolist(),
            "update_rank": ranks, "alignment_steps": np.asarray(res.records["step"]).tolist(),
            "alignment_mean": align.mean((0, 1)).tolist(), "trainable_params": counts["trainable"] + (counts["outer"] if config.gamma > 0 else 0),
            "outer_params": counts["outer"],
            "ms_per_step": 1e3 / res.steps_per_s if res.steps_per_s else None, "setup_s": setup_s,
            "peft": exported, "peak_memory_mb": peak_memory_mb(), "device": jax.devices()[0].device_kind}


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
                          rank=config.rank if config.method == "lora" else 2 * config.rank,
                          base_model_name_or_path="sentence-transformers/all-MiniLM-L6-v2")
        head = binding.materialize(b)["head"]
        save_file({"weight": np.ascontiguousarray(np.asarray(head["kernel"]).T), "bias": np.asarray(head["bias"])},
                  str(folder / f"seed{s}" / "head.safetensors"))
        summary = summary or out
    return summary


def plot(res, acc, final, align, config, path):
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
    axes[1].set_ylabel("validation accuracy")
    axes[1].set_title(f"{config.method}, r = {config.rank}, {config.samples} samples: "
                      f"{acc[:, -1].mean():.3f} +- {acc[:, -1].std():.3f}", fontsize=9)
    for name, sv in sorted(final.items()):
        short = re.sub(r"bert/encoder/layer_(\d+)/.*/(\w+)/kernel", r"L\1 \2", name)
        axes[2].semilogy(np.arange(1, sv.shape[1] + 1), sv[0] / max(sv[0, 0], 1e-30), lw=0.8, label=short)
    axes[2].set_xlim(1, 4 * config.rank)
    axes[2].set_ylim(1e-6, 2)
    axes[2].set_xlabel("index")
    axes[2].set_ylabel("singular value / largest (seed 0)")
    axes[2].set_title("spectra of the final updates Delta W", fontsize=9)
    axes[2].legend(fontsize=6, ncol=2)
    for t in range(align.shape[0]):
        axes[3].plot(steps, align[t].mean(0), lw=0.8)
    axes[3].plot(steps, align.mean((0, 1)), "k-o", ms=3, lw=2, label="mean")
    axes[3].set_xlabel("step")
    axes[3].set_ylabel(f"cos smallest angle, top-{ALIGN_K} subspace: step t vs final")
    axes[3].set_title("early alignment of the updates (per kernel, mean over seeds)", fontsize=9)
    axes[3].legend(fontsize=7)
    save_figure(fig, path)
