"""Benchmarks of the three stages against the physical baseline (raw COPY) in the same run.

Speed targets are checked here, never by timed unit tests. Each module prints one JSON line.
"""
