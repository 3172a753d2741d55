"""Training a Flax image classifier whose weights are bound to parameterizations: seeds vmapped, on-device
minibatches, evaluation and update spectra every ``eval_every`` steps.

``train(model, rules, data, ...)`` binds every parameter by ``rules`` (first match wins; leaves no rule
covers train densely; or ``rules`` is a whole-tree parameterization such as ``intrinsic.GlobalSubspace``:
any object with ``init(params, key)``, ``materialize(state) -> params`` and ``roles(state)``), draws seed ``s``'s model init, binding init and run key (data order, step keys)
from ``fold_in(fold_in(key(seed), s), i)`` for ``i = 0, 1, 2``, and minimizes the ``loss`` (``"cross_entropy"``, or ``"mse"`` against one-hot
targets: a deep linear network's regression loss) with the runner's minibatch mode. Recorded every
``eval_every`` steps: test loss and accuracy, and the singular values of every kernel's update
``W(t) - W(0)`` (kernels as materialized, so a deep factorization is collapsed to one matrix; conv kernels
matricized). ``data = {"train": {"x", "y"}, "test": {"x", "y"}}``.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import analysis, binding, dynamics, tasks
from lrjax.studies import recipe

OPTIMIZERS = ("sgd", "momentum", "adam")
LOSSES = ("cross_entropy", "mse")
RANK_RTOL = 1e-3  # numerical rank: singular values above this fraction of the largest


def make_optimizer(name: str, lr: float) -> optax.GradientTransformation:
    """``sgd``, ``momentum`` (heavy ball 0.9) or ``adam`` at learning rate ``lr``."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return {"sgd": lambda: optax.sgd(lr), "momentum": lambda: optax.sgd(lr, momentum=0.9),
            "adam": lambda: optax.adam(lr)}[name]()


def with_dense_default(rules) -> list[tuple[str, str]]:
    """``rules`` (a ``"regex=spec; ..."`` string or pairs) followed by ``(".*", "dense()")``."""
    pairs = binding.parse_rules(rules) if isinstance(rules, str) else list(rules)
    return pairs + [(".*", "dense()")]


def check_rules_match(rules, paths) -> None:
    """``ValueError`` unless every rule of ``rules`` (a ``"regex=spec; ..."`` string) matches some path
    (a regex must match a whole path: ``.*kernel``, not ``kernel``)."""
    import re
    for pattern, spec in binding.parse_rules(rules):
        if not any(re.fullmatch(pattern, p) for p in paths):
            raise ValueError(f"binding rule {pattern!r}={spec!r} matches no parameter (a regex must match a whole "
                             f"path; paths: {', '.join(sorted(paths))})")


@dataclasses.dataclass(frozen=True)
class RuleBinding:
    """Parameters bound leaf by leaf by ``rules`` (``lrjax.binding``), then ``(".*", "dense()")``."""

    rules: tuple

    def init(self, params, key):
        return binding.bind(params, self.rules, key=key)

    def materialize(self, bound):
        return binding.materialize(bound)

    def roles(self, bound):
        return binding.roles(bound)


def parameterization(rules):
    """``rules`` as a whole-tree parameterization: a ``"regex=spec; ..."`` string or pairs become a
    ``RuleBinding``; an object with ``init``/``materialize``/``roles`` is returned as it is."""
    if all(hasattr(rules, m) for m in ("init", "materialize", "roles")):
        return rules
    return RuleBinding(tuple(with_dense_default(rules)))


def abstract_params(model, dataset: str):
    """``model``'s ``params`` for images of ``dataset`` as shapes only (``jax.eval_shape``: nothing allocated)."""
    from lrjax import data
    x = jnp.zeros((1, *data.IMAGE_SHAPES[dataset]))
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x)["params"])


def kernels_of(params) -> dict:
    """The kernels of a parameter tree: ``{path: W}`` for every leaf whose path ends in ``kernel``."""
    return {binding.path_to_str(p): w for p, w in jax.tree_util.tree_flatten_with_path(params)[0]
            if binding.path_to_str(p).endswith("kernel")}


def update_ranks(spectra: dict[str, np.ndarray]) -> dict:
    """Per kernel, the median over seeds of the numerical and effective rank of the final update."""
    out = {}
    for name, sv in spectra.items():
        final = sv[:, -1]                                               # (seeds, min(m, n))
        out[name] = {"numerical_rank_median": float(np.median(np.sum(final > RANK_RTOL * final[:, :1], -1))),
                     "effective_rank_median": float(np.median(analysis.effective_rank(jnp.asarray(final)))),
                     "full_rank": int(final.shape[-1])}
    return out


def update_spectra(tr: recipe.Training) -> dict:
    """``{kernel: (seeds, T, k)}``: the singular values of every kernel's update recorded during ``train``
    (empty when not recorded)."""
    return {k.split("/", 1)[1]: v for k, v in tr.records.items() if k.startswith("update_sv/")}


def final_kernels(tr: recipe.Training) -> dict:
    """The collapsed kernels at the end of ``train``, ``{path: (seeds, ...)}``."""
    return jax.vmap(lambda b: kernels_of(tr.parameterization.materialize(b)))(tr.params)


def train(model, rules, data: dict, *, optimizer_name: str = "adam", lr: float = 1e-3, batch_size: int = 128,
          steps: int = 1000, seeds: int = 1, eval_every: int = 100, seed: int = 0, loss: str = "cross_entropy",
          checkpoint: dynamics.Checkpointing | None = None, desc: str = "train",
          unroll: int | None | str = "auto", spectra: bool = True) -> recipe.Training:
    """Train ``seeds`` copies of ``model`` (a Flax linen module) bound by ``rules`` (module docstring) through
    the training recipe: ``evaluation`` is the test accuracy (``records["test/loss"]`` the test loss),
    ``update_spectra(tr)`` the recorded update spectra, ``final_kernels(tr)`` the final kernels.
    ``spectra``: record the update spectra of the kernels every ``eval_every`` steps.
    ``unroll``: ``Runner(unroll=...)``; ``"auto"``: for a model with convolutions on a CPU, 10 steps per
    call and the seeds run in turn (``members="loop"``: XLA:CPU runs convolutions inside while loops and
    vmapped ones several times slower), else compiled loops over vmapped seeds."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(seed), s))(jnp.arange(seeds))
    weights = parameterization(rules)

    def init(k):
        params = model.init(jax.random.fold_in(k, 0), data["train"]["x"][:1])["params"]
        return weights.init(params, jax.random.fold_in(k, 1))

    bounds = jax.vmap(init)(keys)
    members = "vmap"
    if unroll == "auto":
        paths = kernels_of(jax.eval_shape(lambda b: weights.materialize(b), jax.tree.map(lambda a: a[0], bounds)))
        conv_on_cpu = any("Conv" in name for name in paths) and jax.default_backend() == "cpu"
        unroll, members = (10, "loop") if conv_on_cpu else (None, "vmap")
    one = jax.tree.map(lambda a: a[0], bounds)

    def apply(b, x):
        return model.apply({"params": weights.materialize(b)}, x)

    def objective(b, batch, key):
        logits = apply(b, batch["x"])
        if loss == "mse":
            return 0.5 * jnp.mean(jnp.sum((logits - jax.nn.one_hot(batch["y"], logits.shape[-1])) ** 2, -1))
        return tasks.cross_entropy(logits, batch["y"])

    def test(b, d):
        return tasks.evaluate(apply, b, d["test"]["x"], d["test"]["y"])

    records = {}
    if spectra:
        records["update_sv"] = analysis.UpdateSpectra(lambda b: kernels_of(weights.materialize(b)))
    if checkpoint is not None:
        checkpoint = dataclasses.replace(checkpoint, identity={"parameterization": repr(weights), **checkpoint.identity})
    return recipe.train(objective, bounds, make_optimizer(optimizer_name, lr), steps, data=data, roles=weights.roles(one),
                        evaluation=("test", test), evaluation_key="test/accuracy", records=records,
                        batches=dynamics.Minibatches(batch_size), batched=True,
                        key=jax.vmap(lambda k: jax.random.fold_in(k, 2))(keys), record_every=eval_every,
                        chunk_size=eval_every * max(1, 500 // eval_every), checkpoint=checkpoint, label=desc,
                        unroll=unroll, members=members, parameterization=weights, initial=one)
