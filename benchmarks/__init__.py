"""Benchmarks of the three stages against the physical baseline (raw COPY) in the same run.

Speed targets are checked here, never by timed unit tests. ``python -m benchmarks`` (``make
bench``) runs them all and reports; :mod:`benchmarks.report` holds the arithmetic and verdicts.
"""
