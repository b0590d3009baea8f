"""Exceptions for user errors.

Library code raises these with a message that names the file, key or value at
fault; the CLI prints the message and exits with status 2 (no traceback).
"""

from __future__ import annotations


class CLSpoofError(Exception):
    """A problem the user can fix (bad input, bad config, bad data)."""


class ConfigError(CLSpoofError):
    """An invalid configuration key or value."""


class DataError(CLSpoofError):
    """Unreadable, missing or inconsistent data."""
