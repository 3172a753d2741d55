"""Moved to ``lrjax.io.peft``; this name re-exports it for scripts that import ``lrjax.peft``."""
from lrjax.io.peft import export, load

__all__ = ["export", "load"]
