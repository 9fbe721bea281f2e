"""Building blocks of ``benchmarks/bench.py``: workload, core timings, Kafka parts, latency, report."""
