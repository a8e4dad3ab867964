"""The one exception type users see.

Every problem a user can fix (a bad file, a wrong shape, a missing data set, a hardware
limit) is raised as :class:`NeurocreditError` with a message that names the file, field
or limit and says how to fix it. The CLI prints the message on one line and exits 2.
"""


class NeurocreditError(Exception):
    """A user-facing error: one readable line, no traceback needed."""
