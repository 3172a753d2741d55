"""Compiled gradient-descent dynamics: the runner, verified checkpoints."""
from lrjax.dynamics.minibatch import Minibatches
from lrjax.dynamics.runner import (DivergenceError, Result, ResumeError, Runner, WithData, is_tracker, plan_segments,
                                   run, with_data)
from lrjax.io.checkpoint import Checkpointer, CheckpointError, CheckpointWarning

__all__ = ["Checkpointer", "CheckpointError", "CheckpointWarning", "DivergenceError", "Minibatches", "Result", "ResumeError",
           "Runner", "is_tracker", "plan_segments", "run", "WithData", "with_data"]
