"""Offline datasets: ``load(name, split) -> (images, labels)``; files found on disk, never downloaded."""
from lrjax.data.datasets import IMAGE_SHAPES, SOURCES, TRAIN_SIZES, DatasetNotFoundError, available, data_dirs, load, load_splits, locate
from lrjax.data.formats import read_idx, read_pixel_csv, write_idx

__all__ = ["IMAGE_SHAPES", "SOURCES", "TRAIN_SIZES", "DatasetNotFoundError", "available", "data_dirs", "load", "load_splits", "locate", "read_idx",
           "read_pixel_csv", "write_idx"]
