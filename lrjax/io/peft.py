"""PEFT LoRA adapter directories: export what lrjax trained so PyTorch users load it with HuggingFace PEFT,
and import such a directory back.

A directory holds ``adapter_config.json`` (``peft_type: "LORA"``, ``r``, ``lora_alpha``, ``target_modules``,
``use_rslora``, ``bias``, ``modules_to_save``, ...) and ``adapter_model.safetensors`` (metadata
``{"format": "pt"}``) with, per adapted module, ``base_model.model.<module>.lora_A.weight`` ``(r, in)`` and
``lora_B.weight`` ``(out, r)``; PEFT adds ``(alpha / r) B A`` (``alpha / sqrt r`` with ``use_rslora``) to the
module's torch weight ``(out, in)``.

In lrjax's ``x @ W`` layout a LoRA leaf is ``W = W0 + s U V^T`` (``U: (in, r)``, ``V: (out, r)``), so
``A = U^T``, ``B = V`` and ``lora_alpha = s r`` (``s sqrt r`` with rslora). Any other adapter whose update
has rank ``<= r`` (a Deep LoRA ``W0 + F_1 ... F_L``, compressed to width ``2 r``) exports merged: the SVD
``Delta = P S Q^T`` truncated to ``r`` gives ``A = (P sqrt S)^T``, ``B = Q sqrt S``, ``lora_alpha = r``
(exact when ``rank Delta <= r``; ``export`` reports the discarded relative Frobenius norm).

Every other leaf that trains (any role but ``frozen``) is carried with its value, as PEFT carries it:

- a trained ``bias`` of a module: PEFT's ``bias="lora_only"`` when every such bias belongs to an adapted
  module, else ``bias="all"``; the biases of the adapted modules (``lora_only``) or of every module
  (``all``) are written, trained or not. An adapted module's bias is ``base_model.model.<module>.base_layer.bias``
  (PEFT wraps the adapted torch module as ``base_layer``; ``get_peft_model_state_dict`` saves that key with
  ``bias="all"``), any other ``base_model.model.<module>.bias``;
- any other trained leaf (a kernel trained densely, a LayerNorm scale, an embedding, a new head): its whole
  module goes to ``modules_to_save`` with every parameter, ``base_model.model.<module>.<weight|bias>``
  (PEFT's ``ModulesToSaveWrapper.adapter_state_dict`` drops the ``modules_to_save.<adapter>.`` part).

Torch parameter names and layouts follow Flax's: ``kernel`` -> ``weight`` transposed, ``scale`` ->
``weight``, ``embedding`` -> ``weight``, ``bias`` -> ``bias``. ``export`` refuses, with one line naming the
leaf, what PEFT cannot carry: a trained leaf ``module_name`` cannot name, a leaf of another kind, an N-d
(conv) kernel, an adapter on anything but a 2-D kernel, a trained leaf of an adapted module that is not its
bias (PEFT never wraps a LoRA target in ``modules_to_save``), and a ``modules_to_save`` name that ends another
module's name (PEFT matches ``modules_to_save`` by suffix).

``module_name(path)`` maps an lrjax parameter path to the torch module name (``lrjax.models.bert.hf_module``
for the BERT encoder). ``load`` rebinds the base parameter tree with ``lora(r, alpha, rslora)`` on the
adapted kernels and ``dense()`` on the biases and ``modules_to_save`` leaves the directory carries, every
other leaf ``rest``. It reads ``target_modules`` (full names or PEFT's suffixes, or a regex),
``exclude_modules``, ``bias`` and ``modules_to_save`` as PEFT matches them; a target module without tensors,
an entry that matches no module, a tensor nothing accounts for, and any PEFT option lrjax does not implement
(``use_dora``, ``fan_in_fan_out``, ``rank_pattern``, ``layers_to_transform``, ``lora_bias``, an
``init_lora_weights`` that changes the base weights, ...) are errors naming it.
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
from lrjax.io.files import write_text
from lrjax.param import FROZEN, Adapter, LoRA, lora

CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
PREFIX = "base_model.model."
TORCH_NAMES = {"kernel": "weight", "scale": "weight", "embedding": "weight", "bias": "bias"}   # Flax leaf -> torch
BIAS_MODES = ("none", "all", "lora_only")
# init_lora_weights values that leave the base weights as they are (pissa, olora, corda, loftq, lora_ga and
# mica rewrite them or change the layer, so an adapter trained with them does not apply to the original base)
BASE_PRESERVING_INITS = (True, False, None, "gaussian", "eva", "orthogonal")
# LoraConfig keys load reads itself, and keys that do not change the adapted model (metadata, training only,
# options of inits refused through init_lora_weights); any other key must hold its off value (None, False,
# empty) or load names it as not implemented
READ_KEYS = {"peft_type", "r", "lora_alpha", "use_rslora", "target_modules", "exclude_modules", "bias",
             "modules_to_save", "init_lora_weights"}
INERT_KEYS = {"base_model_name_or_path", "revision", "task_type", "inference_mode", "lora_dropout", "auto_mapping",
              "peft_version", "megatron_core", "qalora_group_size", "runtime_config", "loftq_config", "eva_config",
              "corda_config", "lora_ga_config"}


def _kind(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _to_torch(path: str, w) -> np.ndarray:
    w = np.asarray(w, np.float32)
    if _kind(path) == "kernel":
        if w.ndim != 2:
            raise ValueError(f"{path!r} is a {w.ndim}-d kernel; only 2-d (Linear) kernels have a PEFT layout")
        w = w.T
    return np.ascontiguousarray(w)


def _module_names(params_or_paths, module_name) -> dict[str, dict[str, str]]:
    """``{module: {leaf kind: path}}`` of every path ``module_name`` names (others are left out)."""
    out: dict[str, dict[str, str]] = {}
    for path in params_or_paths:
        try:
            module = module_name(path)
        except ValueError:
            continue
        out.setdefault(module, {})[_kind(path)] = path
    return out


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


def _trained(p, theta) -> bool:
    return any(r != FROZEN for r in jax.tree.leaves(p.roles(theta)))


def export(directory: str | os.PathLike, bound: binding.Bound, module_name: Callable[[str], str], *,
           rank: int | None = None, base_model_name_or_path: str | None = None) -> dict:
    """Write the PEFT directory of ``bound``: every ``Adapter`` leaf as LoRA (LoRA as it is, others merged to
    ``rank``; all must share one rank and one alpha, as one PEFT config needs), and every other trained leaf
    with its value (its module's bias through PEFT's ``bias``, anything else through ``modules_to_save``;
    module docstring). What PEFT cannot carry raises ``ValueError`` naming it. Returns ``{"r", "lora_alpha",
    "target_modules", "modules", "bias", "modules_to_save", "discarded"}`` (``modules``: the adapted modules;
    ``discarded``: the largest relative Frobenius norm dropped by truncation)."""
    from safetensors.numpy import save_file
    tensors, ranks, alphas, modules, discarded, rslora = {}, set(), set(), [], 0.0, set()
    names, params = _module_names([name for name, _ in bound.params], module_name), dict(bound.params)
    trained = []                                       # (path, module) of trained leaves that are not adapters
    for name, p in bound.params:
        if not isinstance(p, Adapter):
            if _trained(p, bound.theta[name]):
                try:
                    trained.append((name, module_name(name)))
                except ValueError as e:
                    raise ValueError(f"export: trained leaf {name!r} has no torch module name, PEFT cannot carry "
                                     f"it ({e})") from None
            continue
        if _kind(name) != "kernel" or np.ndim(bound.theta[name]["base"]) != 2:
            raise ValueError(f"export: adapter on {name!r}: PEFT LoRA here carries adapters of 2-d kernels only")
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
    adapted = set(modules)
    for name, module in trained:
        if _kind(name) not in TORCH_NAMES:
            raise ValueError(f"export: trained leaf {name!r} is no {'/'.join(TORCH_NAMES)}: PEFT cannot carry it")
        if module in adapted and _kind(name) != "bias":
            raise ValueError(f"export: trained leaf {name!r} is in the LoRA-adapted module {module!r}: PEFT carries "
                             "only the bias of an adapted module")
    saved = sorted({m for n, m in trained if _kind(n) != "bias"})
    for module in saved:
        for path in names[module].values():
            if _kind(path) not in TORCH_NAMES:
                raise ValueError(f"export: {path!r} of module {module!r} (trained, so in modules_to_save) is no "
                                 f"{'/'.join(TORCH_NAMES)}: PEFT cannot carry it")
            value = params[path].materialize(bound.theta[path])
            tensors[f"{PREFIX}{module}.{TORCH_NAMES[_kind(path)]}"] = _to_torch(path, value)
        # PEFT wraps every module whose name ends with a modules_to_save entry (_set_trainable: key.endswith) and
        # adapts no module inside one (check_target_module_exists: the regex below): both must be this module only
        clash = sorted(m for m in names
                       if m != module and (m.endswith(module) or re.match(rf"(^|.*\.){module}($|\..*)", m)))
        if clash:
            raise ValueError(f"export: modules_to_save entry {module!r} would also take {clash[0]!r} (PEFT matches "
                             "modules_to_save by name suffix and wraps what is inside)")
    biases = [(n, m) for n, m in trained if _kind(n) == "bias" and m not in saved]
    bias = "none" if not biases else "lora_only" if all(m in adapted for _, m in biases) else "all"
    if bias != "none":
        for module, leaves in sorted(names.items()):
            path = leaves.get("bias")
            if path is None or module in saved or (bias == "lora_only" and module not in adapted):
                continue
            key = f"{PREFIX}{module}.base_layer.bias" if module in adapted else f"{PREFIX}{module}.bias"
            tensors[key] = _to_torch(path, params[path].materialize(bound.theta[path]))
    targets = sorted(modules)          # full module names: PEFT adapts exactly these, not every same-named one
    config = {"peft_type": "LORA", "r": ranks.pop(), "lora_alpha": alphas.pop(), "target_modules": targets,
              "lora_dropout": 0.0, "bias": bias, "use_rslora": rslora.pop(), "fan_in_fan_out": False,
              "modules_to_save": saved or None, "task_type": None, "base_model_name_or_path": base_model_name_or_path,
              "inference_mode": True}
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{WEIGHTS_FILE}.tmp"   # written, then renamed: a kill never leaves half a file
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, directory / WEIGHTS_FILE)
    write_text(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    return {"r": config["r"], "lora_alpha": config["lora_alpha"], "target_modules": targets, "modules": modules,
            "bias": bias, "modules_to_save": saved, "discarded": discarded}


def _off(value) -> bool:
    return value is None or value is False or (isinstance(value, (str, list, dict, tuple)) and not value)


def _check_config(where: str, config: dict) -> None:
    """One ``ValueError`` line for the first PEFT option of ``config`` lrjax does not implement."""
    if config.get("peft_type") != "LORA":
        raise ValueError(f"{where}: peft_type is {config.get('peft_type')!r}, expected 'LORA'")
    if config.get("bias", "none") not in BIAS_MODES:
        raise ValueError(f"{where}: bias={config['bias']!r} is not implemented (lrjax reads {', '.join(BIAS_MODES)})")
    init = config.get("init_lora_weights", True)
    if not any(init is v or (isinstance(v, str) and init == v) for v in BASE_PRESERVING_INITS):
        raise ValueError(f"{where}: init_lora_weights={init!r} is not implemented (it changes the base weights; "
                         "lrjax applies the adapter to the original base)")
    targets = config.get("target_modules")
    if _off(targets) or targets == "all-linear":
        raise ValueError(f"{where}: target_modules={targets!r} is not implemented (lrjax needs module names or a regex)")
    for key, value in config.items():
        if key not in READ_KEYS | INERT_KEYS and not _off(value):
            text = json.dumps(value)
            raise ValueError(f"{where}: {key}={text if len(text) <= 60 else text[:57] + '...'} is not implemented by lrjax")


def _matches(spec, module: str) -> bool:
    """PEFT's ``target_modules``/``exclude_modules`` rule: a string is a regex on the whole name, a list entry
    names the module or a suffix after a dot."""
    if isinstance(spec, str):
        return re.fullmatch(spec, module) is not None
    return any(module == t or module.endswith(f".{t}") for t in spec)


def _take(directory: Path, tensors: dict, base: dict, path: str, key: str, what: str) -> np.ndarray:
    """Pop tensor ``key`` in lrjax's layout, checked against the shape of the base leaf ``path``."""
    value = tensors.pop(key)
    value = value.T if _kind(path) == "kernel" else value
    if value.shape != tuple(np.shape(base[path])):
        raise ValueError(f"{directory}: {what}: {key} has shape {value.shape}, {path!r} needs {np.shape(base[path])}")
    return value


def _read_saved(where: str, directory: Path, entries, names: dict, tensors: dict, base: dict) -> tuple[dict, set]:
    """``({path: value}, modules)`` of the ``modules_to_save`` modules, their tensors popped from ``tensors``."""
    values, saved = {}, set()
    for entry in entries or []:
        hits = [m for m in names if m.endswith(entry)]        # PEFT's _set_trainable: key.endswith(entry)
        if not hits:
            raise ValueError(f"{where}: modules_to_save entry {entry!r} matches no module of the base")
        for module in hits:
            for kind, path in names[module].items():
                key = f"{PREFIX}{module}.{TORCH_NAMES.get(kind, kind)}"
                if kind not in TORCH_NAMES or key not in tensors:
                    raise ValueError(f"{where}: modules_to_save module {module!r} has no tensor {key} (for {path!r})")
                values[path] = _take(directory, tensors, base, path, key, f"modules_to_save module {module!r}")
            saved.add(module)
    return values, saved


def _match_targets(where: str, config: dict, names: dict, saved: set, tensors: dict, base: dict) -> dict:
    """``{module: (kernel path, A, B)}`` of the target modules, their lora_A/lora_B popped from ``tensors``."""
    targets, exclude = config["target_modules"], config.get("exclude_modules")
    adapted = {}
    for module in sorted(names):
        # PEFT never adapts a modules_to_save module (check_target_module_exists)
        if module in saved or not _matches(targets, module) or (exclude and _matches(exclude, module)):
            continue
        kernel, key = names[module].get("kernel"), f"{PREFIX}{module}.lora_A.weight"
        if kernel is None or np.ndim(base[kernel]) != 2:
            raise ValueError(f"{where}: target module {module!r} has no 2-d kernel to adapt")
        if key not in tensors or key.replace("lora_A", "lora_B") not in tensors:
            raise ValueError(f"{where}: target module {module!r} has no lora_A/lora_B tensors in {WEIGHTS_FILE}")
        adapted[module] = (kernel, tensors.pop(key), tensors.pop(key.replace("lora_A", "lora_B")))
    if not isinstance(targets, str):
        for entry in targets:
            if not any(_matches([entry], m) for m in names):
                raise ValueError(f"{where}: target_modules entry {entry!r} matches no module of the base")
    if not adapted:
        raise ValueError(f"{where}: target_modules {targets!r} adapts no module of the base")
    return adapted


def _read_biases(directory: Path, bias: str, names: dict, saved: set, adapted: dict, tensors: dict,
                 base: dict) -> dict:
    """``{path: value}`` of the biases ``bias`` (PEFT's mode) carries, their tensors popped from ``tensors``."""
    values = {}
    for module, kinds in sorted(names.items()):
        path = kinds.get("bias")
        if bias == "none" or path is None or module in saved or (bias == "lora_only" and module not in adapted):
            continue
        # an adapted module's bias is <module>.base_layer.bias (older PEFT: <module>.bias); PEFT up to 0.19 saves no
        # bias with lora_only, and PEFT keeps the base bias where the file has none: so does load (still trainable)
        keys = [k for k in (f"{PREFIX}{module}.base_layer.bias", f"{PREFIX}{module}.bias")
                if k in tensors and (module in adapted or not k.endswith("base_layer.bias"))]
        if len(keys) > 1:
            raise ValueError(f"{directory}: module {module!r} has two biases: {keys}")
        values[path] = (_take(directory, tensors, base, path, keys[0], f"bias={bias}") if keys
                        else np.asarray(base[path]))
    return values


def _bind(directory: Path, tree, dense: list, adapted: dict, r: int, alpha: float, rs: bool,
          rest: str) -> binding.Bound:
    """``tree`` bound (LoRA on the adapted kernels, ``dense()`` on ``dense``), ``u``/``v`` set from lora_A/lora_B."""
    rules = ([(re.escape(kernel), lora(r, alpha, rs)) for kernel, _, _ in adapted.values()]
             + [(re.escape(p), "dense()") for p in dense] + [(".*", rest)])
    bound = binding.bind(tree, rules)
    theta = dict(bound.theta)
    for module, (path, a, b) in adapted.items():
        w = theta[path]["base"]
        if a.shape != (r, w.shape[0]) or b.shape != (w.shape[1], r):
            raise ValueError(f"{directory}: {path}: lora_A {a.shape} / lora_B {b.shape} do not fit "
                             f"a kernel {tuple(w.shape)} at r={r}")
        theta[path] = {**theta[path], "u": jnp.asarray(a.T, w.dtype), "v": jnp.asarray(b, w.dtype)}
    return binding.Bound(theta, bound.params, bound.treedef)


def load(directory: str | os.PathLike, params, module_name: Callable[[str], str], rest: str = "frozen()") -> binding.Bound:
    """``params`` (the base tree) bound with ``lora(r, lora_alpha, use_rslora)`` on the kernel of every module
    ``target_modules`` names (``U = A^T``, ``V = B``), ``dense()`` holding the values of the biases
    (``bias="all"``/``"lora_only"``) and ``modules_to_save`` modules the directory carries, every other leaf
    ``rest``. Unimplemented options, unmatched entries, missing, unused or misshapen tensors raise."""
    from safetensors.numpy import load_file
    directory = Path(directory)
    where = f"{directory}/{CONFIG_FILE}"
    config = json.loads((directory / CONFIG_FILE).read_text())
    _check_config(where, config)
    tensors = load_file(str(directory / WEIGHTS_FILE))
    r, alpha, rs = int(config["r"]), float(config["lora_alpha"]), bool(config.get("use_rslora", False))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    paths = [binding.path_to_str(p) for p, _ in leaves]
    base = dict(zip(paths, (leaf for _, leaf in leaves)))
    names = _module_names(paths, module_name)
    values, saved = _read_saved(where, directory, config.get("modules_to_save"), names, tensors, base)
    adapted = _match_targets(where, config, names, saved, tensors, base)
    values.update(_read_biases(directory, config.get("bias", "none"), names, saved, adapted, tensors, base))
    if tensors:
        raise ValueError(f"{directory}: tensors the config does not account for (no target module, bias or "
                         f"modules_to_save of the base): {sorted(tensors)[:4]}")
    new = [jnp.asarray(values[p], base[p].dtype) if p in values else leaf for p, (_, leaf) in zip(paths, leaves)]
    tree = jax.tree_util.tree_unflatten(treedef, new)
    return _bind(directory, tree, list(values), adapted, r, alpha, rs, rest)   # values: path -> lrjax layout
