"""Errors raised by environments for misuse of the episode protocol.

An invalid *action* is never an error (the observation says what was wrong); these are
for calls made out of order, which the server turns into HTTP 409.
"""


class EpisodeStateError(RuntimeError):
    """A call that the episode's current state does not allow."""


class ResetNeeded(EpisodeStateError):
    """`step` was called before the first `reset`."""


class EpisodeOver(EpisodeStateError):
    """`step` was called after the episode terminated or was truncated."""


class TaskOptionError(ValueError):
    """`reset` options name a task, split or difficulty the env does not have."""
