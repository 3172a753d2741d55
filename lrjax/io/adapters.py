"""Adapter files: save what a bound model learned without its frozen base, load it onto that base again.

``save(directory, bound, base_recipe=None)`` writes

- ``adapter.json``: ``format`` (2); ``params``: for every leaf, its path and the ``repr`` of its
  parameterization (parsed back with ``param.from_repr``); ``arrays``: every stored array's key
  (``"<param path>|<leaf path>"``) and shape; ``base``: ``{"sha256": base_hash(bound), "recipe": base_recipe}``,
  the hash of the arrays the adapter keeps from its base and, when the caller gives it, how to rebuild
  that base (a JSON dict, e.g. the model and the exact init key of a base lrjax initialised);
- ``adapter.npz``: the leaves whose role is not ``frozen`` (LoRA's ``u``/``v``, Deep LoRA's factors,
  a subspace's ``z``, every leaf of a ``dense()`` binding), nothing of a frozen base.

``load(directory, params)`` rebinds the base parameter tree ``params`` (the pretrained weights) with the
stored parameterizations and puts the stored leaves in place: the result equals the saved ``Bound``.
``binding.materialize`` of it is the merged plain parameter tree (``W0 + update`` per adapted leaf).
It refuses, with a one-line ``AdapterError`` (a ``ValueError``), a missing or extra array, a shape or
dtype other than the base leaf's, a non-finite value, and a base whose hash is not the recorded one
(``WrongBase``, naming both hashes). A format-1 file (no base recorded) loads with a warning.
``sizes(directory)`` gives the bytes on disk.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import jax
import numpy as np

from lrjax import binding
from lrjax.io.files import save_npz, write_json
from lrjax.param import FROZEN, from_repr

FORMAT = 2


class AdapterError(ValueError):
    """An adapter file that does not fit the base parameters, or holds missing, extra or bad arrays."""


class WrongBase(AdapterError):
    """The base parameters are not the ones the adapter was trained on (their hashes differ)."""


def _leaves(bound: binding.Bound):
    """``("<param path>|<leaf path>", leaf, role)`` for every leaf of ``bound``'s theta, in order."""
    for name, p in bound.params:
        theta = bound.theta[name]
        for (path, leaf), role in zip(jax.tree_util.tree_leaves_with_path(theta), jax.tree.leaves(p.roles(theta))):
            yield f"{name}|{jax.tree_util.keystr(path)}", leaf, role


def base_hash(bound: binding.Bound) -> str:
    """sha256 (hex) of the frozen leaves of ``bound`` (keys, dtypes, shapes, bytes): the arrays it keeps
    from its base (LoRA's ``W0``, every ``frozen()`` leaf). A ``dense()`` leaf is stored whole in the
    adapter and takes nothing from the base, so it is not hashed."""
    h = hashlib.sha256()
    for key, leaf, role in _leaves(bound):
        if role == FROZEN:
            if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            a = np.ascontiguousarray(np.asarray(leaf))
            h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode() + a.tobytes())
    return h.hexdigest()


def save(directory: str | os.PathLike, bound: binding.Bound, base_recipe: dict | None = None) -> dict:
    """Write ``adapter.json`` and ``adapter.npz`` (module docstring); returns ``sizes(directory)``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {key: np.asarray(leaf) for key, leaf, role in _leaves(bound) if role != FROZEN}
    save_npz(directory / "adapter.npz", **arrays)
    write_json(directory / "adapter.json", {
        "format": FORMAT, "params": [[name, repr(p)] for name, p in bound.params],
        "arrays": {k: list(v.shape) for k, v in arrays.items()},
        "base": {"sha256": base_hash(bound), "recipe": base_recipe}})
    return sizes(directory)


def _checked(key: str, arrays: dict, leaf):
    """The stored array ``arrays[key]`` in place of the base leaf ``leaf`` (kept when nothing is stored for
    it: a frozen leaf); ``AdapterError`` unless its shape and dtype are the leaf's and its values finite."""
    if key not in arrays:
        return leaf
    a = arrays[key]
    if a.shape != np.shape(leaf):
        raise AdapterError(f"adapter leaf {key} has shape {a.shape}, the base needs {np.shape(leaf)}")
    if a.dtype != leaf.dtype:
        raise AdapterError(f"adapter leaf {key} has dtype {a.dtype}, the base needs {leaf.dtype}")
    if np.issubdtype(a.dtype, np.inexact) and not np.isfinite(a).all():
        raise AdapterError(f"adapter leaf {key} has {a.size - np.isfinite(a).sum()} non-finite values")
    return jax.numpy.asarray(a)


def load(directory: str | os.PathLike, params) -> binding.Bound:
    """The bound model saved in ``directory``, rebuilt on the base parameter tree ``params`` (module docstring)."""
    directory = Path(directory)
    meta = json.loads((directory / "adapter.json").read_text())
    if meta.get("format") not in (1, FORMAT):
        raise AdapterError(f"{directory}/adapter.json has format {meta.get('format')!r}, expected {FORMAT}")
    bound = binding.bind(params, [(re.escape(name), from_repr(text)) for name, text in meta["params"]])
    if [n for n, _ in bound.params] != [n for n, _ in meta["params"]]:
        raise AdapterError(f"the base parameters' paths differ from the adapter's: {[n for n, _ in bound.params]} vs "
                           f"{[n for n, _ in meta['params']]}")
    with np.load(directory / "adapter.npz") as z:
        arrays = {k: z[k] for k in z.files}
    wanted = [key for key, _, role in _leaves(bound) if role != FROZEN]
    missing, extra = [k for k in wanted if k not in arrays], sorted(set(arrays) - set(wanted))
    if missing:
        raise AdapterError(f"{directory}/adapter.npz lacks the adapter leaves {', '.join(missing)}")
    if extra:
        raise AdapterError(f"adapter leaves not used by the base parameters: {', '.join(extra)}")
    theta = {}
    for name, p in bound.params:
        leaves, treedef = jax.tree_util.tree_flatten_with_path(bound.theta[name])
        theta[name] = jax.tree_util.tree_unflatten(treedef, [
            _checked(f"{name}|{jax.tree_util.keystr(path)}", arrays, leaf) for path, leaf in leaves])
    loaded = binding.Bound(theta, bound.params, bound.treedef)
    if meta["format"] == 1:
        warnings.warn(f"{directory} is a format-1 adapter: it records no base, so the base is not checked")
        return loaded
    base = meta.get("base")
    if not isinstance(base, dict) or not isinstance(base.get("sha256"), str):
        raise AdapterError(f"{directory}/adapter.json records no base (\"base\": {{\"sha256\", \"recipe\"}}): cannot tell "
                           "which base it belongs to")
    if (theirs := base_hash(loaded)) != base["sha256"]:
        raise WrongBase(f"{directory} was trained on a base of sha256 {base['sha256']}, these base "
                        f"parameters hash to {theirs} (recipe of its base: {base.get('recipe')})")
    return loaded


def sizes(directory: str | os.PathLike) -> dict:
    """Bytes on disk of the adapter's two files."""
    directory = Path(directory)
    return {name: (directory / name).stat().st_size for name in ("adapter.json", "adapter.npz")}
