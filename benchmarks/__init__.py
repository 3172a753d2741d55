"""Benchmark suites of lrjax (``lrjax bench ...``): outside the library, run from the repository."""
