"""lrjax: a JAX research framework for the low-rank structure of neural networks.

On CPU, XLA runs its own thread pool while LAPACK calls (QR, eigh, SVD inside compiled loops) go to
OpenBLAS, whose spinning worker threads then compete with XLA's: measured on 2 cores, a 1000 x 22 QR in a
GD loop doubled the step time. lrjax therefore defaults ``OPENBLAS_NUM_THREADS=1`` (an environment
variable you set yourself wins); it takes effect when imported before numpy/scipy load OpenBLAS.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
