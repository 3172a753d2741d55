"""Adapter files: save what a bound model learned without its frozen base, load it onto the base again.

``save(directory, bound)`` writes

- ``adapter.json``: for every leaf, its path and the ``repr`` of its parameterization (parsed back with
  ``param.from_repr``), and for every stored array its leaf path and shape;
- ``adapter.npz``: the leaves whose role is not ``frozen`` (LoRA's ``u``/``v``, Deep LoRA's factors,
  a subspace's ``z``, every leaf of a ``dense()`` binding), nothing of a frozen base.

``load(directory, params)`` rebinds the base parameter tree ``params`` (the pretrained weights) with the
stored parameterizations and puts the stored leaves in place: the result equals the saved ``Bound``.
``binding.materialize`` of it is the merged plain parameter tree (``W0 + update`` per adapted leaf).
``sizes(directory)`` gives the bytes on disk.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jax
import numpy as np

from lrjax import binding
from lrjax.io.files import write_json
from lrjax.param import FROZEN, from_repr

FORMAT = 1


def _stored(bound: binding.Bound) -> dict[str, np.ndarray]:
    """``{"<param path>|<leaf path>": array}`` for every non-frozen leaf."""
    out = {}
    for name, p in bound.params:
        theta = bound.theta[name]
        leaves = jax.tree_util.tree_leaves_with_path(theta)
        roles = jax.tree.leaves(p.roles(theta))
        for (path, leaf), role in zip(leaves, roles):
            if role != FROZEN:
                out[f"{name}|{jax.tree_util.keystr(path)}"] = np.asarray(leaf)
    return out


def save(directory: str | os.PathLike, bound: binding.Bound) -> dict:
    """Write ``adapter.json`` and ``adapter.npz`` (module docstring); returns ``sizes(directory)``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = _stored(bound)
    tmp = directory / ".adapter.npz.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, directory / "adapter.npz")
    write_json(directory / "adapter.json", {
        "format": FORMAT, "params": [[name, repr(p)] for name, p in bound.params],
        "arrays": {k: list(v.shape) for k, v in arrays.items()}})
    return sizes(directory)


def load(directory: str | os.PathLike, params) -> binding.Bound:
    """The bound model saved in ``directory``, rebuilt on the base parameter tree ``params``."""
    directory = Path(directory)
    meta = json.loads((directory / "adapter.json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{directory}/adapter.json has format {meta.get('format')!r}, expected {FORMAT}")
    bound = binding.bind(params, [(re.escape(name), from_repr(text)) for name, text in meta["params"]])
    if [n for n, _ in bound.params] != [n for n, _ in meta["params"]]:
        raise ValueError(f"the base parameters' paths differ from the adapter's: {[n for n, _ in bound.params]} vs "
                         f"{[n for n, _ in meta['params']]}")
    with np.load(directory / "adapter.npz") as z:
        arrays = {k: z[k] for k in z.files}
    theta = dict(bound.theta)
    for name, p in bound.params:
        leaves, treedef = jax.tree_util.tree_flatten_with_path(theta[name])
        new = []
        for path, leaf in leaves:
            key = f"{name}|{jax.tree_util.keystr(path)}"
            if key in arrays:
                if arrays[key].shape != np.shape(leaf):
                    raise ValueError(f"adapter leaf {key} has shape {arrays[key].shape}, the base needs {np.shape(leaf)}")
                leaf = jax.numpy.asarray(arrays.pop(key), dtype=leaf.dtype)
            new.append(leaf)
        theta[name] = jax.tree_util.tree_unflatten(treedef, new)
    if arrays:
        raise ValueError(f"adapter leaves not used by the base parameters: {sorted(arrays)}")
    return binding.Bound(theta, bound.params, bound.treedef)


def sizes(directory: str | os.PathLike) -> dict:
    """Bytes on disk of the adapter's two files."""
    directory = Path(directory)
    return {name: (directory / name).stat().st_size for name in ("adapter.json", "adapter.npz")}
