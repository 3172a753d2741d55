"""Matrix completion from a list of observed entries, never a ``(m, n)`` mask or target.

A ``SparseCompletion`` holds the observed entries ``Omega`` as ``(rows, cols, values)`` (sorted by row,
then column) and a held-out sample of unobserved entries for the recovery error. Normalisations follow
the dense task (``lrjax.tasks.recovery``), so step sizes carry over and at small sizes both give the same
numbers:

- loss ``1/2 sum_Omega (W_ij - Phi_ij)^2 / (m n)`` (= ``1/2 mean(M * (W - Phi)^2)``);
- recovery error ``1/2 sum_{unobserved} (W_ij - Phi_ij)^2 / (m n)``, estimated as ``unobserved / (m n)``
  times ``1/2 mean`` over the held-out sample (exact when the sample is every unobserved entry).

Targets: ``factored_target`` gives ``Phi = left @ right.T`` (``left: (m, r)``, ``right: (n, r)``), so any
entry costs ``O(r)``; ``from_matrix`` takes the entries of a real matrix (e.g. images as rows).
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np


#: Above this many entries the exact recovery error (every unobserved entry) is refused: use a sample.
MAX_EXACT_ENTRIES = 10 ** 7
#: The exact ``"gaussian"`` spectrum needs an ``(m, n)`` SVD; refused above this many entries.
MAX_GAUSSIAN_ENTRIES = 4 * 10 ** 6


@dataclasses.dataclass(frozen=True)
class Entries:
    """Entries ``(rows, cols, values)`` of an ``(m, n)`` matrix: int32, int32, float arrays of one length."""

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


@dataclasses.dataclass(frozen=True)
class SparseCompletion:
    """``shape = (m, n)``; ``observed``: the training entries Omega; ``held_out``: the recovery-error sample;
    ``unobserved``: how many entries are not in Omega (``m n - |Omega|``)."""

    shape: tuple[int, int]
    observed: Entries
    held_out: Entries
    unobserved: int

    @property
    def fraction(self) -> float:
        """``p = |Omega| / (m n)``."""
        return len(self.observed) / math.prod(self.shape)

    @property
    def exact_error(self) -> bool:
        """Whether the held-out sample is every unobserved entry."""
        return len(self.held_out) == self.unobserved

    def data(self, dtype) -> dict:
        """The pytree the losses read: index arrays and values on the device, and the weights ``1 / (m n)``
        (loss) and ``unobserved / (m n |held_out|)`` (recovery error)."""
        mn = math.prod(self.shape)
        put = lambda e: {"rows": jnp.asarray(e.rows), "cols": jnp.asarray(e.cols),  # noqa: E731
                         "values": jnp.asarray(e.values, dtype)}
        return {"observed": put(self.observed), "held_out": put(self.held_out),
                "loss_weight": jnp.asarray(1.0 / mn, dtype),
                "error_weight": jnp.asarray(self.unobserved / (mn * max(1, len(self.held_out))), dtype)}


def factored_target(key, m: int, n: int, rank: int, spectrum: str = "gaussian_scale", dtype=jnp.float64):
    """``(left (m, r), right (n, r))`` with ``Phi = left @ right.T`` of rank ``r``.

    ``"gaussian"``: the best rank-``r`` approximation of an ``(m, n)`` standard Gaussian matrix, the
    authors' data (cjyaras/law-of-parsimony 5aa831a ``data.py`` ``generate_data``), exactly ``low_rank_target(key, m, r, spectrum="gaussian", n=n)`` (needs its SVD:
    refused above ``MAX_GAUSSIAN_ENTRIES``); ``"gaussian_scale"``: Haar-random ``U``, ``V`` with singular
    values ``s_i = (sqrt m + sqrt n)(1 + (r - i) / r) / 2``, i = 0..r-1 (the Gaussian's scale, distinct
    values, ``O((m + n) r)`` to draw); ``"spread"`` and ``"flat"`` as in ``low_rank_target``.
    """
    if not 0 < rank <= min(m, n):
        raise ValueError(f"factored_target: rank={rank} must be in 1..{min(m, n)}")
    if spectrum == "gaussian":
        if m * n > MAX_GAUSSIAN_ENTRIES:
            raise ValueError(f"factored_target: spectrum 'gaussian' needs the SVD of a {m} x {n} matrix; above "
                             f"{MAX_GAUSSIAN_ENTRIES:,} entries use 'gaussian_scale'")
        u, s, vt = jnp.linalg.svd(jax.random.normal(key, (m, n), dtype), full_matrices=False)
        return u[:, :rank] * s[:rank], vt[:rank].T
    ku, kv = jax.random.split(key)
    u, _ = jnp.linalg.qr(jax.random.normal(ku, (m, rank), dtype))
    v, _ = jnp.linalg.qr(jax.random.normal(kv, (n, rank), dtype))
    steps = (rank - jnp.arange(rank, dtype=dtype)) / rank
    if spectrum == "gaussian_scale":
        s = (math.sqrt(m) + math.sqrt(n)) * (1.0 + steps) / 2
    elif spectrum == "spread":
        s = 1.0 + steps
    elif spectrum == "flat":
        s = jnp.ones((rank,), dtype)
    else:
        raise ValueError("factored_target: spectrum must be 'gaussian', 'gaussian_scale', 'spread' or 'flat', "
                         f"got {spectrum!r}")
    return u * s, v


def target_entries(left, right, rows, cols, chunk: int = 1 << 20) -> np.ndarray:
    """``Phi[rows, cols] = sum_k left[rows, k] right[cols, k]`` in chunks of ``chunk`` entries."""
    left, right = np.asarray(left), np.asarray(right)
    out = np.empty(len(rows), left.dtype)
    for s in range(0, len(rows), chunk):
        r, c = rows[s:s + chunk], cols[s:s + chunk]
        out[s:s + chunk] = np.einsum("ik,ik->i", left[r], right[c])
    return out


def sample_entries(seed: int, shape: tuple[int, int], count: int, held_out: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Linear indices (row-major, sorted) of ``count`` distinct observed entries drawn uniformly, and of
    the held-out sample: ``held_out`` distinct unobserved ones, or every unobserved entry when ``None``."""
    total = math.prod(shape)
    if not 0 < count < total:
        raise ValueError(f"sample_entries: observed count must be in 1..{total - 1} for shape {shape}, got {count}")
    rng = np.random.default_rng(seed)
    if held_out is None:
        if total > MAX_EXACT_ENTRIES:
            raise ValueError(f"sample_entries: the exact recovery error needs all {total:,} entries (over "
                             f"{MAX_EXACT_ENTRIES:,}); give a held-out sample size")
        order = rng.permutation(total)
        return np.sort(order[:count]), np.sort(order[count:])
    if not 0 < held_out <= total - count:
        raise ValueError(f"sample_entries: held-out count must be in 1..{total - count}, got {held_out}")
    want = count + held_out
    picked = np.unique(rng.integers(0, total, size=int(want * 1.05) + 16, dtype=np.int64))
    while len(picked) < want:  # rare: top up with more draws
        picked = np.unique(np.concatenate([picked, rng.integers(0, total, size=want, dtype=np.int64)]))
    picked = rng.permutation(picked)[:want]
    return np.sort(picked[:count]), np.sort(picked[count:])


def _entries(linear: np.ndarray, n: int, values: np.ndarray) -> Entries:
    return Entries(np.asarray(linear // n, np.int32), np.asarray(linear % n, np.int32), values)


def low_rank_completion(seed: int, shape: tuple[int, int], rank: int, count: int, held_out: int | None = None,
                        spectrum: str = "gaussian_scale", dtype=jnp.float64) -> tuple[SparseCompletion, tuple]:
    """A completion task of a random rank-``rank`` target (``factored_target(jax.random.key(seed))``) from
    ``count`` uniformly sampled entries; returns ``(task, (left, right))``."""
    m, n = shape
    left, right = factored_target(jax.random.key(seed), m, n, rank, spectrum, dtype)
    obs, test = sample_entries(seed, shape, count, held_out)
    values = lambda lin: target_entries(left, right, lin // n, lin % n)  # noqa: E731
    task = SparseCompletion((m, n), _entries(obs, n, values(obs)), _entries(test, n, values(test)),
                            m * n - count)
    return task, (left, right)


def from_matrix(x, fraction: float, seed: int, held_out: int | None = None) -> SparseCompletion:
    """Complete a real ``(m, n)`` matrix ``x`` from ``int(fraction m n)`` of its entries drawn uniformly;
    the held-out sample (default: every other entry) is drawn from the rest."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"from_matrix: expected a 2-D matrix, got shape {x.shape}")
    m, n = x.shape
    count = int(fraction * m * n)
    obs, test = sample_entries(seed, (m, n), count, held_out)
    flat = x.reshape(-1)
    return SparseCompletion((m, n), _entries(obs, n, flat[obs]), _entries(test, n, flat[test]), m * n - count)


def from_dense(mask, target) -> SparseCompletion:
    """The sparse form of a dense completion task (``lrjax.tasks.make_task("completion")``): Omega = the
    mask's ones, held out = every unobserved entry (the exact recovery error)."""
    mask, target = np.asarray(mask), np.asarray(target)
    n = mask.shape[1]
    flat = target.reshape(-1)
    obs, test = np.flatnonzero(mask.reshape(-1)), np.flatnonzero(mask.reshape(-1) == 0)
    return SparseCompletion(tuple(mask.shape), _entries(obs, n, flat[obs]), _entries(test, n, flat[test]),
                            len(test))


EVALUATIONS = ("auto", "gather", "product")
#: ``"auto"`` evaluates through the product matrix when it has at most this many entries and Omega holds at
#: least 1/16 of them (where XLA:CPU's matrix products beat its gathers: measured at d = 1000, p = 0.2).
MAX_PRODUCT_ENTRIES = 4 * 10 ** 6


def _gather(x, idx):
    """``x[idx]`` for a 1-D ``x`` (1-D gathers are XLA:CPU's fast path; indices are in bounds)."""
    return jnp.take(x, idx, mode="clip")


def resolve_evaluation(evaluation: str, shape: tuple[int, int], observed: int, width: int) -> str:
    """``"gather"`` or ``"product"`` for ``evaluation`` (``"auto"``: the product for the original network,
    whose factors are as large as ``W``, or for a small, densely observed matrix; gathers otherwise)."""
    if evaluation not in EVALUATIONS:
        raise ValueError(f"evaluation must be one of {', '.join(EVALUATIONS)}, got {evaluation!r}")
    if evaluation != "auto":
        return evaluation
    mn = math.prod(shape)
    dense_is_cheap = mn <= MAX_PRODUCT_ENTRIES and 16 * observed >= mn
    return "product" if width >= min(shape) or dense_is_cheap else "gather"


@jax.custom_vjp
def _matmul(a, b):
    """``a @ b``, whose VJP ``(g b^T, a^T g)`` multiplies by transposes made explicitly (behind an
    optimization barrier): XLA:CPU folds a transpose into the dot, and ``a^T g`` for ``a: (1000, 10)``,
    ``g: (1000, 1000)`` then took 1.25 ms instead of 0.35 ms (measured on 2 CPU cores). Used on every backend
    (on a GPU the transposes are two extra copies; not measured). Reverse mode only: ``jax.jvp`` raises."""
    return a @ b


def _matmul_fwd(a, b):
    return a @ b, (a, b)


def _matmul_bwd(operands, g):
    at, bt = jax.lax.optimization_barrier((operands[0].T, operands[1].T))
    return g @ bt, at @ g


_matmul.defvjp(_matmul_fwd, _matmul_bwd)


def predict(factors, rows, cols, evaluation: str = "gather") -> jax.Array:
    """``(F_1 ... F_L)[rows, cols]`` (``F_1: (m, w)``, ``F_L: (w, n)``).

    ``"gather"``: without the product matrix, ``sum_k A[rows, k] F_L[k, cols]`` with ``A = F_1 ...
    F_{L-1}``, ``O(m w^2 L + |rows| w)``, one 1-D gather per ``k``. ``"product"``: ``W = F_1 ... F_L``
    (``(m, n)``, each product's VJP through ``_matmul``) and one gather of its entries.
    """
    if evaluation == "product":
        w = functools.reduce(_matmul, factors)
        return _gather(w.reshape(-1), rows * w.shape[1] + cols)
    a = factors[0]
    for f in factors[1:-1]:
        a = a @ f
    at, b = a.T, factors[-1]
    return sum(_gather(at[k], rows) * _gather(b[k], cols) for k in range(b.shape[0]))


def _half_sse(factors, entries, evaluation: str) -> jax.Array:
    r = predict(factors, entries["rows"], entries["cols"], evaluation) - entries["values"]
    return 0.5 * jnp.sum(r * r)


def losses(evaluation: str = "gather"):
    """``(loss, recovery_error)``, functions of ``(theta, data)`` for theta ``{"factors": [...]}``:

    - loss ``1/2 sum_Omega (W_ij - Phi_ij)^2 / (m n)``;
    - recovery error: the held-out estimate of ``1/2 sum_{unobserved} (W_ij - Phi_ij)^2 / (m n)``.
    ``evaluation``: ``"gather"`` or ``"product"`` (``predict``; see ``resolve_evaluation``).
    """
    def loss(theta, data):
        return data["loss_weight"] * _half_sse(theta["factors"], data["observed"], evaluation)

    def recovery_error(theta, data):
        return data["error_weight"] * _half_sse(theta["factors"], data["held_out"], evaluation)
    return loss, recovery_error
