"""Tasks: targets, losses and data (deep matrix factorization, completion, sensing, classification)."""
from lrjax.tasks.classification import accuracy, cross_entropy, evaluate
from lrjax.tasks.factorization import factorization_loss, graded_target, low_rank_target
from lrjax.tasks.recovery import (RecoveryTask, completion_error, completion_loss, factorization_mean_loss,
                                  make_task, observation_mask, sensing_loss)

__all__ = ["accuracy", "cross_entropy", "evaluate", "factorization_loss", "graded_target", "low_rank_target", "RecoveryTask", "completion_error", "completion_loss",
           "factorization_mean_loss", "make_task", "observation_mask", "sensing_loss"]
