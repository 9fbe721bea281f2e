"""Building blocks of ``benchmarks/eval_cdnow.py``: data, engine replay, baselines, metrics, report."""
