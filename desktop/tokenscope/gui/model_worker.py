"""The model's own thread: loading, next-token predictions and generation, off the GUI thread.

Every request carries an id. A newer request of the same kind supersedes an older one: the
worker skips requests that are no longer the latest, and the window drops results whose id is
not the one it waits for. Nothing that crosses threads is a tensor: results are plain Python
records and NumPy arrays.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot


@dataclass(frozen=True)
class ModelInfo:
    """What the window shows about the loaded model."""

    name: str
    source: str
    parameters: int
    layers: int
    context_length: int
    vocab_size: int
    device: str
    architecture: str
    quantization: str | None
    has_chat_template: bool


@dataclass(frozen=True)
class Prediction:
    """The next-token distribution for a context, ready for charts (no tensors)."""

    context_ids: tuple[int, ...]
    logits: np.ndarray  # (V,) float32: the window re-applies sampling knobs without the model
    labels: tuple[str, ...]  # readable label of every token id, shared with the vocabulary
    dropped_tokens: int
    watch_probability: float | None
    watch_text: str
    seconds: float


@dataclass(frozen=True)
class TokenSpan:
    token_id: int
    display: str
    start: int
    end: int


class ModelWorker(QObject):
    """Lives in its own QThread; its slots are called through queued signals."""

    #: (request id, stage text) — emitted in the worker thread while a model loads
    loading_progress = Signal(int, str)
    #: (request id, ModelInfo) — worker thread; the new model is in place
    model_loaded = Signal(int, object)
    #: (request id, message) — worker thread; the previous model (if any) stays in place
    loading_failed = Signal(int, str)
    #: (request id, Prediction) — worker thread
    prediction_ready = Signal(int, object)
    #: (request id, list[TokenSpan]) — worker thread
    tokens_ready = Signal(int, object)
    #: (request id, prompt token ids) — worker thread, before the first token
    generation_started = Signal(int, object)
    #: (request id, GenerationStep) — worker thread, once per generated token
    token_generated = Signal(int, object)
    #: (request id, stop reason, tokens per second) — worker thread
    generation_finished = Signal(int, str, float)
    #: (request id, message) — worker thread; a request failed, the model stays usable
    request_failed = Signal(int, str)

    def __init__(self) -> None:
        super().__init__()
        self.model: Any = None  # tokenscope.lm.LanguageModel, created in this thread
        self.latest_load = 0
        self.latest_predict = 0
        self.stop_generation = threading.Event()  # set from the GUI thread: effective next token
        self.labels: tuple[str, ...] = ()

    # ----- loading -------------------------------------------------------------------------

    @Slot(int, str)
    def load(self, request_id: int, name: str) -> None:
        if request_id != self.latest_load:
            return
        try:
            self.loading_progress.emit(request_id, "importing PyTorch")
            from tokenscope.lm import load_model

            self.loading_progress.emit(request_id, f"reading {name}")
            model = load_model(name)
            self.loading_progress.emit(request_id, "preparing the vocabulary")
            labels = tuple(model.tokenizer.display(i) for i in range(model.tokenizer.vocab_size))
        except Exception as e:  # shown to the person; the previous model stays
            self.loading_failed.emit(request_id, describe_error(e))
            return
        if request_id != self.latest_load:
            return  # cancelled or superseded while loading: keep the current model
        self.model, self.labels = model, labels
        self.model_loaded.emit(request_id, _info(model))

    # ----- predictions ---------------------------------------------------------------------

    @Slot(int, str, str)
    def predict(self, request_id: int, text: str, watch: str) -> None:
        if request_id != self.latest_predict or self.model is None:
            return
        try:
            started = time.perf_counter()
            model = self.model
            dist = model.predict_next_token_probabilities(text)
            logits = dist.logits.float().cpu().numpy()
            watch_p = dist.probability_of(watch) if watch else None
            self.prediction_ready.emit(
                request_id,
                Prediction(
                    context_ids=dist.context_ids,
                    logits=logits,
                    labels=self.labels,
                    dropped_tokens=dist.dropped_tokens,
                    watch_probability=watch_p,
                    watch_text=watch,
                    seconds=time.perf_counter() - started,
                ),
            )
        except Exception as e:
            self.request_failed.emit(request_id, describe_error(e))

    @Slot(int, str)
    def tokenize(self, request_id: int, text: str) -> None:
        if self.model is None:
            return
        try:
            spans = [
                TokenSpan(t.token_id, t.display, t.start, t.end) for t in self.model.tokenize(text)
            ]
            self.tokens_ready.emit(request_id, spans)
        except Exception as e:
            self.request_failed.emit(request_id, describe_error(e))

    # ----- generation ----------------------------------------------------------------------

    @Slot(int, object, int, object, object)
    def generate(
        self, request_id: int, prompt: Any, max_tokens: int, sampling: Any, forced: Any
    ) -> None:
        """Generate from `prompt` (text or token ids); stops early when stop_generation is set.

        `forced` is None or (step, token id): start with that alternative to a step that was
        generated before (a branch), then go on generating.
        """
        if self.model is None:
            self.request_failed.emit(request_id, "no model is loaded")
            return
        started = time.perf_counter()
        count = 0
        reason = "max_tokens"
        try:
            if forced is not None:
                step = self._forced_step(*forced)
                prompt = [*prompt, step.token_id]
                self.token_generated.emit(request_id, step)
                count, max_tokens = 1, max_tokens - 1
            gen = self.model.generate(prompt, max_tokens=max_tokens, sampling=sampling, top_k=20)
            self.generation_started.emit(request_id, list(gen.prompt_ids))
            try:
                for step in gen:
                    count += 1
                    self.token_generated.emit(request_id, step)
                    if self.stop_generation.is_set():
                        break
            finally:
                gen.close()
            reason = gen.stop_reason or "closed"
        except Exception as e:
            self.request_failed.emit(request_id, describe_error(e))
            reason = "failed"
        seconds = time.perf_counter() - started
        self.generation_finished.emit(request_id, reason, count / seconds if seconds > 0 else 0.0)

    def _forced_step(self, source: Any, token_id: int) -> Any:
        """The record of choosing `token_id` where `source` was generated: same distribution."""
        tok = self.model.tokenizer
        raw = {a.token_id: a.probability for a in source.top_raw}
        sampled = {a.token_id: a.probability for a in source.top_sampled}
        return dataclasses.replace(
            source,
            token_id=token_id,
            piece=tok.display(token_id),
            text=tok.token_text(token_id),
            probability=raw.get(token_id, 0.0),
            sampled_probability=sampled.get(token_id, 0.0),
            elapsed=0.0,
            is_eos=token_id == tok.eos_id,
        )


def describe_error(e: Exception) -> str:
    """What to show a person: our own errors as they are, anything else with its origin."""
    from tokenscope.lm.errors import TokenscopeError

    if isinstance(e, (TokenscopeError, ValueError, OSError)):
        return str(e)
    return f"{type(e).__name__}: {e}\n\n{traceback.format_exc(limit=3)}"


def _info(model: Any) -> ModelInfo:
    c = model.config
    return ModelInfo(
        name=model.name,
        source=model.source or "",
        parameters=model.parameter_count,
        layers=c.n_layer,
        context_length=c.context_length,
        vocab_size=model.tokenizer.vocab_size,
        device=str(model.device),
        architecture=getattr(model, "architecture", None)
        or ("Llama-style" if c.position == "rope" else "GPT-2-style"),
        quantization=getattr(model, "quantization", None),
        has_chat_template=bool(getattr(model, "chat_template", None)),
    )


class WorkerThread(QThread):
    """The QThread that owns a ModelWorker; stopped and joined when the window closes."""

    def __init__(self, worker: ModelWorker) -> None:
        super().__init__()
        self.setObjectName("modelThread")
        # The worker's Python between torch calls holds the GIL; switching threads more often
        # than the 5 ms default keeps the GUI thread's timers on time (FIELD_NOTES: GIL).
        sys.setswitchinterval(0.0005)
        worker.moveToThread(self)
        self.worker = worker

    def shutdown(self) -> None:
        self.worker.stop_generation.set()
        self.quit()
        self.wait(10_000)
