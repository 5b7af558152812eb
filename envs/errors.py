"""Errors raised by environments for misuse of the episode protocol or bad parameters.

An invalid *action* is never an error (the observation says what was wrong). Calls made
out of order raise an `EpisodeStateError` (the server answers 409); constructor kwargs
and reset options outside their declaration raise a `ParamError` (the server answers 400).
"""


class EpisodeStateError(RuntimeError):
    """A call that the episode's current state does not allow."""


class ResetNeeded(EpisodeStateError):
    """`step` was called before the first `reset`."""


class EpisodeOver(EpisodeStateError):
    """`step` was called after the episode terminated or was truncated."""


class ParamError(ValueError):
    """A constructor kwarg or reset option is unknown, of the wrong type or out of its declared range."""


class TaskOptionError(ParamError):
    """`reset` options name a task, split or difficulty the env does not have."""
