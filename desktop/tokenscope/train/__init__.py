"""The Qt-free training engine: corpus, loop, distributed runs, events, checkpoints.

Run it as its own process: `python -m tokenscope.train --config run.json` (or under torchrun).
"""

from tokenscope.train.config import Probe, TrainConfig
from tokenscope.train.events import parse_event, read_events

__all__ = ["Probe", "TrainConfig", "parse_event", "read_events"]
