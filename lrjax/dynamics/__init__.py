"""Compiled gradient-descent dynamics: the runner, checkpoints."""
from lrjax.dynamics.checkpoint import Checkpointer
from lrjax.dynamics.runner import DivergenceError, Result, WithData, is_tracker, plan_segments, run, with_data

__all__ = ["Checkpointer", "DivergenceError", "Result", "is_tracker", "plan_segments", "run", "WithData", "with_data"]
