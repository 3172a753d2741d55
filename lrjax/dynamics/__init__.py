"""Compiled gradient-descent dynamics: a pure ``Program`` (one step and its records), the host ``Runner``
(chunks, devices, checkpoints, progress, divergence), ``Checkpointing`` and resume, minibatches, and sweeps
across processes (``lrjax.dynamics.distributed``)."""
from lrjax.dynamics.minibatch import Minibatches
from lrjax.dynamics.program import Program, WithData, is_tracker, with_data
from lrjax.dynamics.resume import Checkpointing, ResumeError
from lrjax.dynamics.runner import (DivergenceError, Interrupted, Layout, Result, Runner, Schedule, plan_segments,
                                   run)
from lrjax.io.checkpoint import Checkpointer, CheckpointError, CheckpointWarning

__all__ = ["Checkpointer", "CheckpointError", "Checkpointing", "CheckpointWarning", "DivergenceError", "Interrupted", "Layout",
           "Minibatches", "Program", "Result", "ResumeError", "Runner", "Schedule", "is_tracker", "plan_segments",
           "run", "WithData", "with_data"]
