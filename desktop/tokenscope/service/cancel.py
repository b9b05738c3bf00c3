"""Cancellation of jobs: the engine's CancelToken (tokenscope.lm.cancel), one per job.

A job's token goes down into the model's calls: checked between tokens, tensors and sweep
points, and registered with each request to a server so that cancelling wakes it at once.
`JobCancelled` is the engine's Cancelled: raised inside a job, the runner reports it as
cancelled.
"""

from tokenscope.lm.cancel import Cancelled as JobCancelled
from tokenscope.lm.cancel import CancelToken

__all__ = ["CancelToken", "JobCancelled"]
