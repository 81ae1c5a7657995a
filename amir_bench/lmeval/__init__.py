"""lm-evaluation-harness both ways: read its `--log_samples` output (read.py) and write
amir-bench benchmarks as lm-eval tasks (export.py) graded by amir-bench (tasks.py)."""
