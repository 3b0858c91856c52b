"""Benchmarks of the platform against raw baselines measured in the same run."""
