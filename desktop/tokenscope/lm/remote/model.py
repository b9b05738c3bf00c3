"""RemoteModel: a model on a server, answering the model protocol (tokenscope.lm.backend).

    model = RemoteModel("http://127.0.0.1:8080/v1")          # the server's one model
    dist = model.predict_next_token_probabilities("The capital of Indonesia is")
    model.get_most_likely_token(dist)                         # " Jak"
    for step in model.generate("The capital of Indonesia is", max_tokens=8):
        print(step.text, step.probability, step.top_raw)

A server returns the log-probabilities of its top k tokens only: a distribution is those k
tokens plus one "other" share, and says so in its label ("remote · top-20 · raw"). Scores of
given answers come from the prompt's own log-probabilities where the server echoes them
(exact), else token by token through its top k where it shows its tokens (a token below the
list makes the score an upper bound). Every call takes the caller's CancelToken, which ends a
request waiting on the server at once.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tokenscope.lm.backend import Capabilities, Distribution, ModelFacts, is_server
from tokenscope.lm.cancel import CancelToken
from tokenscope.lm.remote.detect import ServerInfo, detect, list_models
from tokenscope.lm.remote.distribution import RemoteDistribution
from tokenscope.lm.remote.generation import RemoteGeneration, forced_step
from tokenscope.lm.remote.parsing import Malformed, StandIns, logprob, positions, same_token, spans
from tokenscope.lm.remote.transport import (
    DEFAULT_KEY_ENV,
    TIMEOUT_S,
    RemoteError,
    Server,
    remote_target,
    split_target,
)
from tokenscope.lm.tokens import ContinuationScore, GenerationStep, Token

if TYPE_CHECKING:
    from tokenscope.lm.language_model import LanguageModel
    from tokenscope.lm.sampling import SamplingSettings
    from tokenscope.lm.tokenizer import Tokenizer


class RemoteModel:
    """A model served over HTTP (see the module notes)."""

    tokenizer: Tokenizer | None = None  # only the server has it

    def __init__(
        self,
        url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        api_key_env: str = DEFAULT_KEY_ENV,
        timeout: float = TIMEOUT_S,
        cancel: CancelToken | None = None,
    ) -> None:
        if not is_server(url):
            raise RemoteError(f"{url!r} is not a server address (http://HOST:PORT/v1)")
        url, named = split_target(url)
        self.server = Server(url, api_key=api_key, api_key_env=api_key_env, timeout=timeout)
        self.info: ServerInfo = detect(self.server, model or named, cancel)
        self.root, self.url = self.server.root, self.server.url
        model = self.info.model
        # llama.cpp names its model by the file's path: the file's name says enough.
        short = model.rsplit("/", 1)[-1] if model.startswith("/") else model
        self.name = f"{short} @ {urllib.parse.urlsplit(self.root).netloc}"
        self.target = remote_target(self.url, model)
        self._ids = StandIns()

    @classmethod
    def list_models(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        api_key_env: str = DEFAULT_KEY_ENV,
        timeout: float = 15.0,
    ) -> tuple[str, ...]:
        """The models a server serves (GET /v1/models), without connecting to one."""
        if not is_server(url):
            raise RemoteError(f"{url!r} is not a server address (http://HOST:PORT/v1)")
        server = Server(
            split_target(url)[0], api_key=api_key, api_key_env=api_key_env, timeout=timeout
        )
        return tuple(list_models(server))

    # ----- what it is ------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        s = self.info
        return Capabilities(
            kind=s.kind,
            label=s.label,
            full_vocabulary=False,
            max_top_k=s.max_top_k,
            can_score=s.prompt_logprobs or s.tokenizes,
            exact_scores=s.prompt_logprobs or (s.tokenizes and s.lists_all),
            shows_tokens=s.tokenizes,
            internals=False,
            continues_token_ids=False,
            chat_template=False,
            local_weights=False,
        )

    def facts(self) -> ModelFacts:
        s = self.info
        return ModelFacts(
            name=self.name,
            source=self.root,
            parameters=s.parameters,
            context_length=s.context_length,
            vocab_size=s.vocab_size,
            device="server",
            architecture=f"{s.kind} server",
            target=self.target,
        )

    def __repr__(self) -> str:
        return f"RemoteModel({self.name!r}, {self.info.label})"

    def _cannot(self, what: str) -> ValueError:
        return ValueError(f"{what} is not available for a model on a server ({self.name})")

    def internals(self) -> LanguageModel:
        raise self._cannot("the forward pass (lens, attention, ablation, surprisal)")

    def chat_prompt(self, prompt: str, *, system: str | None = None) -> str:
        raise self._cannot("wrapping a prompt in the chat template (--chat)")

    def set_threads(self, threads: int | None) -> int:
        return 0  # the server decides its own threads

    def compile_decoding(self, progress: Callable[[str, int, int], None] | None = None) -> float:
        raise self._cannot("compiled decoding")

    # ----- the seed API ------------------------------------------------------------------------

    def _completion(
        self, prompt: str | list[int], cancel: CancelToken | None, **extra: Any
    ) -> dict[str, Any]:
        body = {
            "model": self.info.model,
            "prompt": prompt,
            "logprobs": self.info.max_top_k,
            **extra,
        }
        answer = self.server.json("/v1/completions", body, cancel)
        try:
            choice = answer["choices"][0]
        except (KeyError, IndexError, TypeError):
            choice = None
        if not isinstance(choice, dict):
            raise RemoteError(f"{self.url}/completions answered without choices")
        return choice

    def predict_next_token_probabilities(
        self,
        context: str,
        *,
        sampling: SamplingSettings | None = None,
        top_k: int = 10,
        cancel: CancelToken | None = None,
    ) -> RemoteDistribution:
        """The server's top next tokens after `context` (raw where the server can say), as
        many as it lists; `top()` gives `top_k` of them by default."""
        if not isinstance(context, str):
            raise ValueError("a model on a server takes its context as text, not token ids")
        choice = self._completion(context, cancel, max_tokens=1, temperature=0.0)
        found = positions(choice.get("logprobs"), self._ids, self.root)
        if not found or not found[0][1]:
            raise RemoteError(f"{self.root} returned no log-probabilities for this prompt")
        top = found[0][1][: self.info.max_top_k]
        listed = sum(t.probability for t in top)
        dist = RemoteDistribution(tuple(top), max(0.0, 1.0 - listed), self.info.label, top_k=top_k)
        return dist.with_sampling(sampling) if sampling is not None else dist

    def get_most_likely_token(self, distribution: Distribution) -> str:
        return distribution.most_likely.text

    def tokenize(
        self, text: str, *, special: bool = False, cancel: CancelToken | None = None
    ) -> list[Token]:
        """The text split as the server splits it (llama.cpp's and vLLM's /tokenize);
        `special`: with the tokens the server adds to a prompt (BOS)."""
        s = self.info
        if not s.tokenizes:
            raise RemoteError(f"{s.kind} at {self.root} does not show how it splits a text")
        if s.kind == "llama.cpp":
            body: dict[str, Any] = {"content": text, "with_pieces": True, "add_special": special}
            answer = self.server.json("/tokenize", body, cancel)
            items = answer.get("tokens") if isinstance(answer, dict) else None
            if not isinstance(items, list):
                raise RemoteError(f"{self.root}/tokenize answered without tokens")
            pieces = [
                (_whole(t["id"], self.root), _piece(t["piece"]))
                for t in items
                if isinstance(t, dict) and "id" in t and "piece" in t
            ]
        else:
            body = {
                "model": s.model,
                "prompt": text,
                "return_token_strs": True,
                "add_special_tokens": special,
            }
            answer = self.server.json("/tokenize", body, cancel)
            ids = answer.get("tokens") if isinstance(answer, dict) else None
            strs = answer.get("token_strs") if isinstance(answer, dict) else None
            if not isinstance(ids, list):
                raise RemoteError(f"{self.root}/tokenize answered without tokens")
            if not isinstance(strs, list) or len(strs) != len(ids):
                strs = ["?"] * len(ids)  # ids without their text: shown as they are
            pieces = [
                (_whole(i, self.root), str(t).encode("utf-8"))
                for i, t in zip(ids, strs, strict=True)
            ]
        return spans(text, pieces)

    # ----- scoring ---------------------------------------------------------------------------

    def score_continuation(
        self, context: str, continuation: str, *, cancel: CancelToken | None = None
    ) -> ContinuationScore:
        """P(continuation | context) from the log-probabilities the server gives the prompt's
        own tokens (`echo`), where it can; else through its top k (see the module notes)."""
        s = self.info
        if not continuation:
            raise RemoteError("the continuation is empty")
        if not s.prompt_logprobs:
            if s.tokenizes:
                return self._score_through_top_k(context, continuation, cancel)
            raise RemoteError(
                f"{s.kind} at {self.root} returns no log-probabilities of the prompt and does "
                "not show its tokens, so it cannot score a given answer (vLLM, SGLang and "
                "llama.cpp can; or open the model locally)"
            )
        choice = self._completion(context + continuation, cancel, max_tokens=1, echo=True)
        logprobs = choice.get("logprobs")
        if not isinstance(logprobs, dict):
            raise RemoteError(f"{self.root} did not return the prompt's log-probabilities")
        offsets, values = logprobs.get("text_offset"), logprobs.get("token_logprobs")
        if not isinstance(offsets, list) or not isinstance(values, list):
            raise RemoteError(f"{self.root} did not return the prompt's log-probabilities")
        start = len(context)
        if start not in offsets:
            raise RemoteError(
                "the server's tokens do not start where the continuation does: a token spans "
                "the end of the context (end the context before a space, or the answer with one)"
            )
        first = offsets.index(start)
        end = start + len(continuation)
        scores: list[float] = []
        for offset, value in zip(offsets[first:], values[first:], strict=False):
            if not isinstance(offset, int) or offset >= end:
                break  # the generated token after the prompt
            try:
                scores.append(logprob(value))
            except Malformed as e:
                raise RemoteError(f"{self.root} gave a prompt token {e}") from None
        if not scores or not all(math.isfinite(v) for v in scores):
            raise RemoteError(f"{self.root} gave the continuation no usable log-probabilities")
        found = positions(logprobs, self._ids, self.root)
        rank, above, top_text, top_p = None, 0, "", 0.0
        if first < len(found) and found[first][1]:
            token, top = found[first]
            top_text, top_p = top[0].text, top[0].probability
            at = next((i for i, t in enumerate(top, 1) if token and t.text == token.text), None)
            rank, above = at, (0 if at is not None else len(top))
        return ContinuationScore(tuple(scores), rank, top_text, top_p, rank_above=above)

    def _score_through_top_k(
        self, context: str, continuation: str, cancel: CancelToken | None
    ) -> ContinuationScore:
        """Token by token: the server's tokens of context + continuation (it shows them),
        then one request per continuation token with the token ids before it as the prompt,
        reading that token's probability off the listed alternatives. A token not listed is
        asked for again with the whole distribution where the server gives it (llama.cpp:
        exact, about 5 MB for a 49,152-token vocabulary); elsewhere it counts as the last
        listed one's probability, and the score says it is a bound."""
        head = [t.token_id for t in self.tokenize(context, special=True, cancel=cancel)]
        whole = self.tokenize(context + continuation, special=True, cancel=cancel)
        ids = [t.token_id for t in whole]
        if ids[: len(head)] != head:
            raise RemoteError(
                "the server's tokens do not start where the continuation does: a token spans "
                "the end of the context (end the context before a space, or the answer with one)"
            )
        if len(ids) == len(head):
            raise RemoteError("the continuation adds no token")
        logprobs: list[float] = []
        rank: int | None = None
        above, top_text, top_p, bound = 0, "", 0.0, False
        for at in range(len(head), len(ids)):
            choice = self._completion(ids[:at], cancel, max_tokens=1, temperature=0.0)
            found = positions(choice.get("logprobs"), self._ids, self.root)
            if not found or not found[0][1]:
                raise RemoteError(f"{self.root} returned no log-probabilities for this prompt")
            top = found[0][1]
            hit = next((i for i, t in enumerate(top) if same_token(t, whole[at])), None)
            if hit is None and self.info.lists_all:
                everything = self._completion(ids[:at], cancel, max_tokens=1, temperature=0.0,
                                              logprobs=self.info.vocab_size)  # fmt: skip
                found = positions(everything.get("logprobs"), self._ids, self.root)
                top = found[0][1] if found and found[0][1] else top
                hit = next((i for i, t in enumerate(top) if same_token(t, whole[at])), None)
            if hit is None:
                p, bound = top[-1].probability, True
            else:
                p = top[hit].probability
            if at == len(head):
                rank, above = (None, len(top)) if hit is None else (hit + 1, 0)
                top_text, top_p = top[0].text, top[0].probability
            logprobs.append(math.log(max(p, 1e-300)))
        return ContinuationScore(
            tuple(logprobs),
            rank,
            top_text,
            top_p,
            token_ids=tuple(ids[len(head) :]),
            upper_bound=bound,
            rank_above=above,
        )

    # ----- generation --------------------------------------------------------------------------

    def generate(
        self,
        prompt: str | Sequence[int],
        *,
        max_tokens: int = 64,
        sampling: SamplingSettings | None = None,
        stop: Sequence[str] = (),
        top_k: int = 10,
        forced: tuple[GenerationStep, int] | None = None,
        cancel: CancelToken | None = None,
    ) -> RemoteGeneration:
        """Tokens as the server streams them, each with its listed alternatives. `sampling`
        (the knobs) goes to the server; the knobs a plain OpenAI API lacks only when set."""
        if not isinstance(prompt, str):
            raise ValueError("a model on a server continues from text, not from token ids")
        first = None
        if forced is not None:
            first, appended = forced_step(*forced)
            prompt += appended
        left = max_tokens - (1 if first is not None else 0)
        exchange = None
        if left > 0:
            body = self._generation_body(prompt, left, sampling, stop)
            exchange = self.server.open("/v1/completions", body, cancel)
        return RemoteGeneration(
            exchange,
            max_tokens=max_tokens,
            sampling=sampling,
            top_k=top_k,
            ids=self._ids,
            first=first,
            stops=bool(stop),
        )

    def _generation_body(
        self, prompt: str, max_tokens: int, sampling: SamplingSettings | None, stop: Sequence[str]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.info.model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "stream": True,
            "logprobs": self.info.max_top_k,
            "temperature": 1.0,
        }
        if stop:
            body["stop"] = list(stop)
        if sampling is not None:
            body["temperature"] = sampling.temperature
            if sampling.top_p < 1.0:
                body["top_p"] = sampling.top_p
            if sampling.top_k:
                body["top_k"] = sampling.top_k
            if sampling.min_p > 0.0:
                body["min_p"] = sampling.min_p
            if sampling.repetition_penalty != 1.0:
                body["repetition_penalty"] = sampling.repetition_penalty
                body["repeat_penalty"] = sampling.repetition_penalty  # (llama.cpp's name)
            if sampling.seed is not None:
                body["seed"] = sampling.seed
        return body


def _whole(value: Any, root: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
        raise RemoteError(f"{root}/tokenize gave a token id that is not a whole number")
    return value


def _piece(value: Any) -> bytes:
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value)
    return str(value).encode("utf-8", errors="replace")


__all__ = ["RemoteModel"]
