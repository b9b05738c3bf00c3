"""Which device a run trains on, and roughly how fast it could go (its peak FLOP/s).

    detect_device(processes=2, threads=3)   # TrainingDevice("cpu", "CPU, 2 × 3 threads", ...)

The peak is a rough figure: the trainer states it in its start event (the MFU it reports is
measured against it), and the Training tab guesses a run's time from it until a few real steps
have been timed. Detecting imports torch: call it off the window's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TrainingDevice:
    """Where a run would train, for `processes` processes."""

    kind: str  # "cuda" or "cpu"
    label: str  # in words, e.g. "2 × NVIDIA H200" or "CPU, 1 × 3 threads"
    peak_flops: float  # of all the processes together, roughly


def peak_flops(device: torch.device, threads: int) -> float:
    """A rough peak for the MFU estimate (stated in the start event, so it can be judged)."""
    import torch

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in (("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L4", 121e12)):
            if key in name:
                return value
        return 100e12
    return threads * 100e9  # ~AVX-512 FMA throughput of one core, float32


def detect_device(processes: int, threads: int) -> TrainingDevice:
    """The device a run of `processes` processes with `threads` torch threads each would use:
    a GPU per process while there are GPUs, else the CPU."""
    import torch

    if torch.cuda.is_available():
        device = torch.device("cuda:0")
        gpus = min(processes, torch.cuda.device_count())
        name = torch.cuda.get_device_name(device)
        return TrainingDevice("cuda", f"{gpus} × {name}", peak_flops(device, 1) * gpus)
    label = f"CPU, {processes} × {threads} thread{'s' if threads > 1 else ''}"
    return TrainingDevice("cpu", label, peak_flops(torch.device("cpu"), threads) * processes)
