"""The one exception type for errors a user can cause (bad input, missing file, misfit model)."""


class UndenseError(Exception):
    """A problem with the user's input: the message says what, where, and what to do.

    The CLI prints it as one line and exits with status 2; anything else is a bug
    and keeps its traceback.
    """


class DoesNotFit(UndenseError):
    """The model needs more of the target than it has, even folded as little as it can be."""
