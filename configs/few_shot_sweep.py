"""Few-shot sweep: LoRA vs Deep LoRA over adapter ranks and training-set sizes, one ``few_shot`` run per cell
(Yaras et al. 2024: Deep LoRA's accuracy is insensitive to the rank and its updates have low numerical rank).

    lrjax run configs/few_shot_sweep.py                               # ranks 8, 32 x 16, 256 samples x both methods
    lrjax run configs/few_shot_sweep.py --set ranks="(8,16,32,64)" --set sample_sizes="(16,)"
    lrjax run configs/few_shot_sweep.py:quick                         # smoke test

Every other key is few_shot's (``configs/few_shot.py``: lrjax's protocol by default, ``:authors`` for the Deep LoRA
authors' figure protocol), shared by all cells.
"""
import runpy
from pathlib import Path


def get_config(arg=None):
    c = runpy.run_path(str(Path(__file__).with_name("few_shot.py")))["get_config"](arg)
    c.experiment = "few_shot_sweep"
    for key in ("method", "rank", "samples"):
        del c[key]
    c.methods = "lora,deep_lora"
    c.ranks = (8, 32)
    c.sample_sizes = (16, 256)
    if arg == "quick":
        c.ranks, c.sample_sizes = (2, 4), (8,)
    return c
