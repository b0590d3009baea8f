"""Infrastructure, kept in one place and passed in: processes (:class:`RunContext`),
devices and seeds, checkpoint files, atomic writes and the user cache folder."""

from cl_spoof.infra.context import RunContext

__all__ = ["RunContext"]
