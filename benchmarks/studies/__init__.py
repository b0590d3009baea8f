"""Accuracy studies on real data and finished runs."""
