"""Compiled gradient-descent dynamics: the runner, checkpoints."""
from lrjax.dynamics.checkpoint import Checkpointer
from lrjax.dynamics.runner import DivergenceError, Result, is_tracker, plan_segments, run

__all__ = ["Checkpointer", "DivergenceError", "Result", "is_tracker", "plan_segments", "run"]
