"""Benchmarks: each ``bench_*.py`` module has ``run(quick: bool) -> list[dict]``.

Every result row measures one thing against a baseline measured in the same run, so the
ratio means something on a noisy machine. ``python -m benchmarks`` runs them all.
"""
