"""Pure-function weight parameterizations (imports neither Flax nor optax).

Each family module registers its spec name (``"lowrank"``, ``"lora"``, ...) itself when imported.
"""
from lrjax.param.base import FROZEN, OUTER, ROLES, TRAINABLE, Adapter, Parameterization, combine, partition
from lrjax.param.combinators import Plus, Product, plus, product
from lrjax.param.decompose import Decomposition, decompose_additive, decompose_multiplicative
from lrjax.param.deep import CompressedDeep, Deep, DeepLoRA, compressed_deep, deep, deep_lora
from lrjax.param.dense import Dense, Frozen, dense, frozen
from lrjax.param.dlor import DLoR, dlor
from lrjax.param.lowrank import LoRA, LowRank, lora, lowrank
from lrjax.param.matricized import Matricized, matrix_shape
from lrjax.param.projection import Projection
from lrjax.param.registry import available, from_repr, from_spec, register
from lrjax.param.subspace import Subspace, subspace

__all__ = [
    "FROZEN", "OUTER", "ROLES", "TRAINABLE", "Adapter", "Parameterization", "combine", "partition", "Plus",
    "Product", "plus", "product", "Decomposition", "decompose_additive", "decompose_multiplicative",
    "CompressedDeep", "Deep", "DeepLoRA", "compressed_deep", "deep", "deep_lora", "Dense", "Frozen", "dense",
    "frozen", "DLoR", "dlor", "LoRA", "LowRank", "lora", "lowrank", "Matricized", "matrix_shape", "Projection", "available", "from_repr", "from_spec", "register",
    "Subspace", "subspace",
]
