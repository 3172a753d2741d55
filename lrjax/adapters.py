"""Moved to ``lrjax.io.adapters``; this name re-exports it for scripts that import ``lrjax.adapters``."""
from lrjax.io.adapters import load, save, sizes

__all__ = ["load", "save", "sizes"]
