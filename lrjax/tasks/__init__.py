"""Tasks: losses and data."""
from lrjax.tasks.factorization import factorization_loss, low_rank_target

__all__ = ["factorization_loss", "low_rank_target"]
