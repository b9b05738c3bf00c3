"""Few-shot scoring: how probable the expected answer is after a prompt, and as shots grow.

    score_answer(model, prompt, "awan")      # P(" awan" | prompt), all of its tokens
    sweep(model, prompt)                     # the same for 0, 1, ..., k shots
    for point in iter_sweep(model, prompt):  # one point at a time (cancel by stopping)
        ...

Works on any model of the protocol (tokenscope.lm.backend): on a server that lists only its
top k tokens a score may be an upper bound and a rank only "below the k listed"; the records
say so (`upper_bound`, `rank_above`) and every client shows it.

Qt-free: the window's few-shot tab and `tokenscope fewshot` are both clients of this module.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenscope.lm.cancel import CancelToken
from tokenscope.lm.fewshot.prompt import FewShotPrompt

if TYPE_CHECKING:
    from tokenscope.lm.backend import ModelBackend


@dataclass(frozen=True)
class AnswerScore:
    """How probable an answer is after a prompt.

    `probability` is the whole continuation's: the product over all of its tokens, each given
    the prompt and the tokens before it. `first_token_rank` and the top prediction describe the
    distribution right after the prompt. `dropped_tokens` counts prompt tokens cut from the
    front so that the prompt and the answer fit the model's context window (0: it fits).
    On a server that lists only its top k tokens: `upper_bound` means the probability is at
    most the value given, and a first token below the list has rank None, `rank_above` k.
    """

    answer: str
    continuation: str
    probability: float
    logprob: float
    token_probabilities: tuple[float, ...]
    first_token_rank: int | None
    top_prediction: str
    top_probability: float
    dropped_tokens: int = 0
    upper_bound: bool = False
    rank_above: int = 0


def _prompt_text(prompt: FewShotPrompt | str) -> str:
    return prompt.assemble().text if isinstance(prompt, FewShotPrompt) else prompt


def _continuation(prompt: FewShotPrompt | str, answer: str) -> str:
    # A plain-text prompt has no template to say where the whitespace goes: score as given.
    return prompt.answer_text(answer) if isinstance(prompt, FewShotPrompt) else answer


def _score_continuation(
    model: ModelBackend, text: str, answer: str, continuation: str, cancel: CancelToken | None
) -> AnswerScore:
    score = model.score_continuation(text, continuation, cancel=cancel)
    return AnswerScore(
        answer=answer,
        continuation=continuation,
        probability=score.probability,
        logprob=score.logprob,
        token_probabilities=tuple(math.exp(lp) for lp in score.logprobs),
        first_token_rank=score.first_rank,
        top_prediction=score.top_text,
        top_probability=score.top_probability,
        dropped_tokens=score.dropped_tokens,
        upper_bound=score.upper_bound,
        rank_above=score.rank_above,
    )


def score_answer(
    model: ModelBackend,
    prompt: FewShotPrompt | str,
    answer: str,
    *,
    cancel: CancelToken | None = None,
) -> AnswerScore:
    """P(answer | prompt) over all of the answer's tokens, with its first token's rank.

    For a FewShotPrompt the scored continuation is `prompt.answer_text(answer)` (" awan");
    a plain-text prompt is followed by `answer` exactly as given.
    """
    text, continuation = _prompt_text(prompt), _continuation(prompt, answer)
    return _score_continuation(model, text, answer, continuation, cancel)


def _normalise(logprobs: Sequence[float]) -> list[float]:
    """Softmax over log probabilities: p_i / sum(p), safe when every p underflows to 0."""
    if not logprobs:
        return []
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    total = sum(weights)
    return [w / total for w in weights]


def score_answers(
    model: ModelBackend,
    prompt: FewShotPrompt | str,
    answers: Sequence[str],
    *,
    cancel: CancelToken | None = None,
) -> list[AnswerScore]:
    """`score_answer` for each answer (the prompt assembled once for all)."""
    text = _prompt_text(prompt)
    return [_score_continuation(model, text, a, _continuation(prompt, a), cancel) for a in answers]


def candidate_shares(scores: Sequence[AnswerScore]) -> list[tuple[str, float, float]]:
    """(candidate, P(candidate | prompt), P normalised over the candidates) per score.

    The normalised values sum to 1 and keep the order of the raw probabilities: the model's
    choice among the label words, as a classifier would report it.
    """
    shares = _normalise([s.logprob for s in scores])
    return [(s.answer, s.probability, n) for s, n in zip(scores, shares, strict=True)]


def score_candidates(
    model: ModelBackend,
    prompt: FewShotPrompt | str,
    candidates: Sequence[str],
    *,
    cancel: CancelToken | None = None,
) -> list[tuple[str, float, float]]:
    """(candidate, P(candidate | prompt), P normalised over the candidates) per candidate."""
    return candidate_shares(score_answers(model, prompt, list(candidates), cancel=cancel))


# ----- sweeps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPoint:
    """The expected answer after `shots` examples taken in example order `order`.

    Order 0 is the examples as given; orders 1.. are seeded shuffles (see `reorder`).
    `normalised` is P(expected) normalised over the prompt's candidates (None without them);
    `dropped_tokens` as in AnswerScore.
    """

    shots: int
    order: int
    probability: float
    rank: int | None  # None: below the `rank_above` tokens a server listed
    top_prediction: str
    top_probability: float
    normalised: float | None = None
    dropped_tokens: int = 0
    upper_bound: bool = False  # `probability` is at most this (a server's top-k list)
    rank_above: int = 0


def reorder(prompt: FewShotPrompt, order: int, seed: int = 0) -> FewShotPrompt:
    """The prompt with its examples in sweep order `order`: 0 as given, 1.. shuffled.

    Each (seed, order) gives the same shuffle every time, whatever other orders are asked for.
    """
    if order < 0:
        raise ValueError(f"the order cannot be negative (got {order})")
    if order == 0:
        return prompt
    # A string seed is hashed with SHA-512 by random, so it is stable across runs and versions.
    rng = random.Random(f"tokenscope-fewshot/{seed}/{order}")
    examples = list(prompt.examples)
    rng.shuffle(examples)
    return prompt.with_examples(examples)


def sweep_size(prompt: FewShotPrompt, max_shots: int | None = None, orders: int = 1) -> int:
    """How many points a sweep has; ValueError naming the problem for settings that cannot run."""
    if not prompt.expected:
        raise ValueError("the prompt has no expected answer to sweep")
    if orders < 1:
        raise ValueError(f"need at least one order (got {orders})")
    available = len(prompt.examples)
    k = available if max_shots is None else max_shots
    if not 0 <= k <= available:
        raise ValueError(f"max_shots must be between 0 and {available} (got {max_shots})")
    return orders * (k + 1)


def iter_sweep(
    model: ModelBackend,
    prompt: FewShotPrompt,
    *,
    max_shots: int | None = None,
    orders: int = 1,
    seed: int = 0,
    cancel: CancelToken | None = None,
) -> Iterator[SweepPoint]:
    """P(expected answer) for 0..k shots (k = max_shots or all examples) in each example order.

    Order 0 uses the examples as given; orders 1..orders-1 shuffle all the examples (seeded,
    see `reorder`) and take the first k. Points come one at a time, sorted by (order, shots);
    stop iterating to stop the sweep. With candidates, each point also carries P(expected)
    normalised over them (the expected answer joins them if it is missing).
    """
    total = sweep_size(prompt, max_shots, orders)
    k = total // orders - 1
    answers = list(prompt.candidates)
    if answers and prompt.expected not in answers:
        answers.append(prompt.expected)
    for order in range(orders):
        shuffled = reorder(prompt, order, seed)
        for shots in range(k + 1):
            shot_prompt = shuffled.with_shots(shots)
            if answers:
                scores = score_answers(model, shot_prompt, answers, cancel=cancel)
                shares = _normalise([s.logprob for s in scores])
                at = answers.index(prompt.expected)
                score, normalised = scores[at], shares[at]
            else:
                score = score_answer(model, shot_prompt, prompt.expected, cancel=cancel)
                normalised = None
            yield SweepPoint(
                shots=shots,
                order=order,
                probability=score.probability,
                rank=score.first_token_rank,
                top_prediction=score.top_prediction,
                top_probability=score.top_probability,
                normalised=normalised,
                dropped_tokens=score.dropped_tokens,
                upper_bound=score.upper_bound,
                rank_above=score.rank_above,
            )


def sweep(
    model: ModelBackend,
    prompt: FewShotPrompt,
    *,
    max_shots: int | None = None,
    orders: int = 1,
    seed: int = 0,
    cancel: CancelToken | None = None,
) -> list[SweepPoint]:
    """Every point of `iter_sweep`, as a list."""
    return list(
        iter_sweep(model, prompt, max_shots=max_shots, orders=orders, seed=seed, cancel=cancel)
    )


__all__ = [
    "AnswerScore",
    "SweepPoint",
    "candidate_shares",
    "iter_sweep",
    "reorder",
    "score_answer",
    "score_answers",
    "score_candidates",
    "sweep",
    "sweep_size",
]


def read_sweep(points: Sequence[SweepPoint]) -> str:
    """What a sweep's curve says, in a sentence for the learner: memorised (high and flat),
    learned in context (rising), not learned (low and flat), or mixed. Order 0 only."""
    by_shots = sorted((p for p in points if p.order == 0), key=lambda p: p.shots)
    if len(by_shots) < 2:
        return ""
    first, last = by_shots[0].probability, by_shots[-1].probability
    best = max(p.probability for p in by_shots)
    k = by_shots[-1].shots
    if first >= 0.8 and best - min(p.probability for p in by_shots) < 0.15:
        return (
            f"Flat and high (P = {first:.2f} with no example): the model already knows this "
            "answer from its training data, so the examples have nothing to teach it. That is "
            "memorisation, not learning in context."
        )
    if last - first >= 0.3:
        return (
            f"Rising from {first:.2f} with no example to {last:.2f} with {k}: the model takes "
            "the task from the examples in the prompt (in-context learning)."
        )
    if best < 0.2:
        return (
            f"Low throughout (at most {best:.2f}): the examples do not help this model with "
            "this task; a larger or better-trained model may."
        )
    return f"From {first:.2f} with no example to {last:.2f} with {k}."
