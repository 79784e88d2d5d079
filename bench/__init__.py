"""Benchmarks: each prints its figures and writes JSON; run as ``python -m bench.NAME``
from the repository root (see the Makefile's ``bench`` target)."""
