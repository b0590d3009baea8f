"""Benchmarks of cl-spoof: speed measurements and accuracy studies (see README.md here)."""
