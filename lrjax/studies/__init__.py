"""One module per line of work, built on the library: ``classification`` (networks on real data),
``matrix_recovery`` and ``sparse_recovery`` (deep matrix factorization, completion and sensing),
``theorem_simulation`` (the invariant-subspace theorem), ``intrinsic_dimension``, ``dlor_approximation``,
``regression`` (small regression networks). ``experiments/`` call them."""
