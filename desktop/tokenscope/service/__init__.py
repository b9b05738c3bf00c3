"""The model service: owns the loaded model and runs typed jobs on it, one thread, in turn.

    service = ModelService()
    runner = JobRunner(service, sink=print)       # sink receives JobEvent records
    threading.Thread(target=runner.serve).start()
    ticket = runner.submit(Load("builtin"), epoch=0)
    runner.submit(Predict("The capital of Indonesia is"), epoch=1)
    ticket.cancel()                               # from any thread
    runner.shutdown()                             # cancels everything; serve() returns

Every job carries a cancellation token (checked between tokens, tensors and sweep points)
and the model epoch it was asked for; the epoch changes each time another model is loaded,
and work asked of an older epoch is dropped instead of run. Results are display-ready plain
records (tokenscope.service.records), never tensors, so any thread may hold them.

Qt-free: the window's bridge (tokenscope.gui.service_bridge) is one client, the command line
(through `run_job`, on its own thread) another.
"""

from tokenscope.service.cancel import CancelToken, JobCancelled
from tokenscope.service.jobs import (
    AttentionMap,
    ChatPrompt,
    CompileStatus,
    FewShotPreview,
    Generate,
    InContext,
    Induction,
    Job,
    Lens,
    Load,
    Predict,
    ScaleRun,
    SetAblation,
    SetThreads,
    Surprisal,
    Sweep,
    Tokenize,
)
from tokenscope.service.runner import JobEvent, JobRunner, Ticket, run_job
from tokenscope.service.service import ModelService

__all__ = [
    "AttentionMap",
    "CancelToken",
    "ChatPrompt",
    "CompileStatus",
    "FewShotPreview",
    "Generate",
    "InContext",
    "Induction",
    "Job",
    "JobCancelled",
    "JobEvent",
    "JobRunner",
    "Lens",
    "Load",
    "ModelService",
    "Predict",
    "ScaleRun",
    "SetAblation",
    "SetThreads",
    "Surprisal",
    "Sweep",
    "Ticket",
    "Tokenize",
    "run_job",
]
