"""Benchmark and study scripts (``python -m benchmarks.<name>`` or ``python benchmarks/<name>.py``)."""
