"""``python -m lrjax.data``: which datasets are installed (with their sizes), and how to install the others."""
from lrjax.data.datasets import DatasetNotFoundError, available, load

for name in available():
    try:
        print(f"{name:<14} installed: {load(name, 'all')[0].shape}")
    except DatasetNotFoundError as e:
        print(f"{name:<14} not installed: {e}")
