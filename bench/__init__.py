"""Benchmarks of the session backend and agent service against the baselines users would pick, run side by side."""
