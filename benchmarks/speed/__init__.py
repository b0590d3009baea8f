"""Speed benchmarks: each writes one results/<name>.json."""
