"""What several test modules share: tiny configs, synthetic corpora, checks, paths."""
