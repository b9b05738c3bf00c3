"""Few-shot requests, run in the model's thread beside the ModelWorker (it shares its model).

Previews (assembled prompt, next-token logits, answer probabilities) are cheap and superseded
by newer ones; a sweep is long, reports progress point by point and can be cancelled.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from tokenscope.gui.model_worker import ModelWorker, describe_error


@dataclass(frozen=True)
class FewShotPreview:
    text: str
    parts: tuple[Any, ...]  # PromptPart records
    token_count: int
    context_length: int
    context_ids: tuple[int, ...]
    logits: np.ndarray  # (V,) for the next-token chart
    labels: tuple[str, ...]
    expected: Any  # AnswerScore or None
    candidates: tuple[tuple[str, float, float], ...]  # (candidate, probability, normalised)


class FewShotWorker(QObject):
    #: (request id, FewShotPreview) — emitted in the model thread
    preview_ready = Signal(int, object)
    #: (request id, model name, points done, points in all) — model thread, during a sweep
    sweep_progress = Signal(int, str, int, int)
    #: (request id, model name, list[SweepPoint]) — model thread, one model's sweep is done
    sweep_result = Signal(int, str, object)
    #: (request id, "completed" / "cancelled" / "failed") — model thread
    sweep_finished = Signal(int, str)
    #: (request id, message) — model thread
    request_failed = Signal(int, str)

    def __init__(self, models: ModelWorker) -> None:
        super().__init__()
        self.models = models  # the model lives there; both objects live in the same thread
        self.latest_preview = 0
        self.cancel_sweep = threading.Event()  # set from the GUI thread

    @Slot(int, object)
    def preview(self, request_id: int, prompt: Any) -> None:
        model = self.models.model
        if request_id != self.latest_preview or model is None:
            return
        try:
            from tokenscope.lm.fewshot import score_answer, score_candidates

            assembled = prompt.assemble(model.tokenizer)
            dist = model.predict_next_token_probabilities(assembled.text)
            expected = score_answer(model, prompt, prompt.expected) if prompt.expected else None
            candidates = (
                tuple(score_candidates(model, prompt, prompt.candidates))
                if prompt.candidates
                else ()
            )
            self.preview_ready.emit(
                request_id,
                FewShotPreview(
                    text=assembled.text,
                    parts=assembled.parts,
                    token_count=assembled.token_count or len(dist.context_ids),
                    context_length=model.config.context_length,
                    context_ids=dist.context_ids,
                    logits=dist.logits.float().cpu().numpy(),
                    labels=self.models.labels,
                    expected=expected,
                    candidates=candidates,
                ),
            )
        except Exception as e:
            self.request_failed.emit(request_id, describe_error(e))

    @Slot(int, object, int, int, str)
    def sweep(self, request_id: int, prompt: Any, max_shots: int, orders: int, other: str) -> None:
        """Sweep the loaded model, then (if named) a second model loaded just for this."""
        from tokenscope.lm.fewshot import sweep

        runs = [(self.models.model, None)]
        if other:
            runs.append((None, other))
        status = "completed"
        try:
            for model, name in runs:
                if model is None:
                    from tokenscope.lm.loading import load_model

                    self.sweep_progress.emit(request_id, name, 0, 0)
                    model = load_model(name)
                label = model.name if name is None else name
                points = sweep(
                    model,
                    prompt,
                    max_shots=max_shots,
                    orders=orders,
                    progress=lambda done, total, label=label: self.sweep_progress.emit(
                        request_id, label, done, total
                    ),
                    cancelled=self.cancel_sweep.is_set,
                )
                self.sweep_result.emit(request_id, label, points)
                if self.cancel_sweep.is_set():
                    status = "cancelled"
                    break
        except Exception as e:
            self.request_failed.emit(request_id, describe_error(e))
            status = "failed"
        self.sweep_finished.emit(request_id, status)
