"""PEFT LoRA adapter directories: export what lrjax trained so PyTorch users load it with HuggingFace PEFT,
and import such a directory back.

A directory holds ``adapter_config.json`` (``peft_type: "LORA"``, ``r``, ``lora_alpha``, ``target_modules``,
``use_rslora``, ...) and ``adapter_model.safetensors`` (metadata ``{"format": "pt"}``) with, per adapted
module, ``base_model.model.<module>.lora_A.weight`` ``(r, in)`` and ``lora_B.weight`` ``(out, r)``; PEFT
adds ``(alpha / r) B A`` (``alpha / sqrt r`` with ``use_rslora``) to the module's torch weight ``(out, in)``.

In lrjax's ``x @ W`` layout a LoRA leaf is ``W = W0 + s U V^T`` (``U: (in, r)``, ``V: (out, r)``), so
``A = U^T``, ``B = V`` and ``lora_alpha = s r`` (``s sqrt r`` with rslora). Any other adapter whose update
has rank ``<= r`` (a Deep LoRA ``W0 + F_1 ... F_L``, compressed to width ``2 r``) exports merged: the SVD
``Delta = P S Q^T`` truncated to ``r`` gives ``A = (P sqrt S)^T``, ``B = Q sqrt S``, ``lora_alpha = r``
(exact when ``rank Delta <= r``; ``export`` reports the discarded relative Frobenius norm).

``module_name(path)`` maps an lrjax kernel path to the torch module name (``lrjax.models.bert.hf_module``
for the BERT encoder). ``load`` rebinds the base parameter tree with ``lora(r, alpha, rslora)`` on the
exported kernels.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import binding
from lrjax.param import Adapter, LoRA, lora

CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
PREFIX = "base_model.model."


def _factors(p, theta, rank: int | None) -> tuple[np.ndarray, np.ndarray, float, float]:
    """``(A (r, in), B (out, r), lora_alpha, discarded)`` of one adapted leaf."""
    if isinstance(p, LoRA):
        scale = p.scaling * (p.rank ** 0.5 if p.rslora else p.rank)
        return np.asarray(theta["u"]).T, np.asarray(theta["v"]), float(scale), 0.0
    delta = np.asarray(p.delta(theta), np.float64)
    r = rank or min(delta.shape)
    u, s, vt = np.linalg.svd(delta, full_matrices=False)
    total = float(np.linalg.norm(s))
    discarded = float(np.linalg.norm(s[r:]) / total) if total > 0 else 0.0
    root = np.sqrt(s[:r])
    return (u[:, :r] * root).T.astype(np.float32), (vt[:r].T * root).astype(np.float32), float(r), discarded


def export(directory: str | os.PathLike, bound: binding.Bound, module_name: Callable[[str], str], *,
           rank: int | None = None, base_model_name_or_path: str | None = None) -> dict:
    """Write the PEFT directory of every ``Adapter`` leaf of ``bound`` (LoRA as it is, others merged to
    ``rank``; all leaves must share one rank and one alpha, as one PEFT config needs). Returns
    ``{"r", "lora_alpha", "target_modules", "modules", "discarded"}`` (``discarded``: the largest relative
    Frobenius norm dropped by truncation)."""
    from safetensors.numpy import save_file
    tensors, ranks, alphas, modules, discarded, rslora = {}, set(), set(), [], 0.0, set()
    for name, p in bound.params:
        if not isinstance(p, Adapter):
            continue
        a, b, alpha, lost = _factors(p, bound.theta[name], rank)
        module = module_name(name)
        tensors[f"{PREFIX}{module}.lora_A.weight"] = np.ascontiguousarray(a, np.float32)
        tensors[f"{PREFIX}{module}.lora_B.weight"] = np.ascontiguousarray(b, np.float32)
        ranks.add(a.shape[0])
        alphas.add(round(alpha, 9))
        rslora.add(bool(getattr(p, "rslora", False)))
        modules.append(module)
        discarded = max(discarded, lost)
    if not modules:
        raise ValueError("export: the bound model has no adapter leaves")
    if len(ranks) != 1 or len(alphas) != 1 or len(rslora) != 1:
        raise ValueError(f"export: one PEFT config needs one rank, alpha and use_rslora; got ranks {sorted(ranks)}, "
                         f"alphas {sorted(alphas)}, use_rslora {sorted(rslora)}")
    targets = sorted(modules)          # full module names: PEFT adapts exactly these, not every same-named one
    config = {"peft_type": "LORA", "r": ranks.pop(), "lora_alpha": alphas.pop(), "target_modules": targets,
              "lora_dropout": 0.0, "bias": "none", "use_rslora": rslora.pop(), "fan_in_fan_out": False,
              "modules_to_save": None, "task_type": None, "base_model_name_or_path": base_model_name_or_path,
              "inference_mode": True}
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return {"r": config["r"], "lora_alpha": config["lora_alpha"], "target_modules": targets, "modules": modules,
            "discarded": discarded}


def load(directory: str | os.PathLike, params, module_name: Callable[[str], str], rest: str = "frozen()") -> binding.Bound:
    """``params`` (the base tree) bound with ``lora(r, lora_alpha, use_rslora)`` on every kernel whose module
    the directory adapts (``U = A^T``, ``V = B``), every other leaf ``rest``. Unused or misshapen tensors raise."""
    from safetensors.numpy import load_file
    directory = Path(directory)
    config = json.loads((directory / CONFIG_FILE).read_text())
    if config.get("peft_type") != "LORA":
        raise ValueError(f"{directory}/{CONFIG_FILE}: peft_type is {config.get('peft_type')!r}, expected 'LORA'")
    for key in ("rank_pattern", "alpha_pattern"):
        if config.get(key):
            raise ValueError(f"{directory}/{CONFIG_FILE}: per-module {key} is not supported")
    tensors = load_file(str(directory / WEIGHTS_FILE))
    r, alpha, rs = int(config["r"]), float(config["lora_alpha"]), bool(config.get("use_rslora", False))
    paths = [binding.path_to_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    adapted = {}
    for path in paths:
        if not path.endswith("kernel"):
            continue
        key = f"{PREFIX}{module_name(path)}.lora_A.weight"
        if key in tensors:
            adapted[path] = (tensors.pop(key), tensors.pop(key.replace("lora_A", "lora_B"), None))
    if tensors:
        raise ValueError(f"{directory}: tensors for modules the base has no kernel for: {sorted(tensors)[:4]}")
    spec = lora(r, alpha, rs)
    bound = binding.bind(params, [(re.escape(p), spec) for p in adapted] + [(".*", rest)])
    theta = dict(bound.theta)
    for path, (a, b) in adapted.items():
        base = theta[path]["base"]
        if b is None or a.shape != (r, base.shape[0]) or b.shape != (base.shape[1], r):
            raise ValueError(f"{directory}: {path}: lora_A {a.shape} / lora_B {None if b is None else b.shape} do not fit "
                             f"a kernel {tuple(base.shape)} at r={r}")
        theta[path] = {**theta[path], "u": jnp.asarray(a.T, base.dtype), "v": jnp.asarray(b, base.dtype)}
    return binding.Bound(theta, bound.params, bound.treedef)
