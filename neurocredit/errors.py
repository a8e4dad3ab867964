"""The one exception type users see.

Every problem a user can fix (a bad file, a wrong shape, a missing data set, a hardware
limit) is raised as :class:`NeurocreditError` with a message that names the file, field
or limit and says how to fix it. The CLI prints the message on one line and exits 2.
"""


class NeurocreditError(Exception):
    """A user-facing error: one readable line, no traceback needed."""


def require_at_least_one(label: str, value) -> None:
    """Raise ``<label> must be >= 1, got <value>`` when ``value`` is given and below 1.

    ``label`` names what the user set (``--epochs``, ``rule.block_steps``); ``None`` means "not set"
    and passes.
    """
    if value is not None and value < 1:
        raise NeurocreditError(f"{label} must be >= 1, got {value}")
