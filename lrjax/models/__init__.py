"""Small Flax (linen) models used by the experiments: an MLP and a CNN for image classification."""
from lrjax.models.classifiers import CNN, MLP, make

__all__ = ["CNN", "MLP", "make"]
