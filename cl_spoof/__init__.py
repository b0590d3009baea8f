"""cl-spoof: continual learning of fake-speech (spoofing) detection."""

__version__ = "0.1.0"
