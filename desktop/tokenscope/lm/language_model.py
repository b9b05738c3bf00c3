"""LanguageModel: a Transformer and its tokenizer, with the API the app and the CLI speak.

model = tokenscope.load_model("builtin")
dist = model.predict_next_token_probabilities("The capital of Indonesia is")
model.get_most_likely_token(dist)     # " Jak"
dist.probability_of(" Jakarta")       # product over the continuation's tokens

It answers the model protocol (tokenscope.lm.backend.ModelBackend) with everything exact
and every capability: the forward pass is here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tokenscope.lm import arguments
from tokenscope.lm.backend import Capabilities, Distribution, ModelFacts
from tokenscope.lm.cancel import CancelToken
from tokenscope.lm.config import ModelConfig
from tokenscope.lm.distribution import NextTokenDistribution
from tokenscope.lm.generation import Generation, choose_alternative
from tokenscope.lm.hooks import HookFn, HookHandle, hook_point, is_hooked
from tokenscope.lm.kv_cache import KVCache
from tokenscope.lm.model import Transformer
from tokenscope.lm.sampling import SamplingSettings, sampling_distribution
from tokenscope.lm.tokenizer import Tokenizer
from tokenscope.lm.tokens import ContinuationScore, GenerationStep, Token

#: the most logits one scoring batch holds at once (prompts x positions x vocabulary): 256 MB
LOGITS_BUDGET = 64 * 2**20

if TYPE_CHECKING:
    from tokenscope.lm.background_compile import BackgroundCompile
    from tokenscope.lm.compiled import CompiledDecoder
    from tokenscope.lm.inside import Surprisal


class LanguageModel:
    """A Transformer with its tokenizer. Not thread-safe: use it from one thread at a time."""

    def __init__(
        self,
        transformer: Transformer,
        tokenizer: Tokenizer,
        *,
        name: str = "model",
        source: str | None = None,
        add_bos: bool = False,
        chat_template: str | None = None,
        architecture: str | None = None,
        quantization: str | None = None,
        packing: str | None = None,
    ) -> None:
        if tokenizer.vocab_size > transformer.config.vocab_size:
            raise ValueError(
                f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                f"{transformer.config.vocab_size} output rows"
            )
        self.transformer = transformer.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.source = source  # where it was loaded from, if anywhere
        self.add_bos = add_bos  # prepend BOS to every context (models trained that way)
        self.chat_template = chat_template  # Jinja text from the model file, if it has one
        self.architecture = architecture  # e.g. "llama", "gpt2" for models loaded from files
        self.quantization = quantization  # how the file stored the weights, e.g. "Q4_1"
        # How the weights are held in memory when not plain float tensors (see
        # tokenscope.lm.packed), e.g. "int4 g32 + fp16 head + grouped embedding".
        self.packing = packing
        self._prefix_ids: list[int] = []  # what _prefix_cache holds
        self._prefix_cache: KVCache | None = None
        # Set by compile_decoding: the compiled one-token step (lm.compiled), which `forward`
        # uses for single new tokens while no hook is attached.
        self._decoder: CompiledDecoder | None = None
        self.compile_note = ""  # why decoding stays eager, where compile_in_background says
        # Lasting changes to the forward pass by name ("ablation"; steering would be another):
        # what each one is, and the hooks that make it (see `intervene`).
        self.interventions: dict[str, tuple[object, list[HookHandle]]] = {}

    # ----- facts ---------------------------------------------------------------------------

    @property
    def config(self) -> ModelConfig:
        return self.transformer.config

    @property
    def device(self) -> torch.device:
        return self.transformer.device

    @property
    def parameter_count(self) -> int:
        from tokenscope.lm.packed import packed_weight_count

        t = self.transformer
        return sum(p.numel() for p in t.parameters()) + packed_weight_count(t)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            kind="local",
            label="full vocabulary",
            full_vocabulary=True,
            max_top_k=self.tokenizer.vocab_size,
            can_score=True,
            exact_scores=True,
            shows_tokens=True,
            internals=True,
            continues_token_ids=True,
            chat_template=bool(self.chat_template),
            local_weights=True,
        )

    def facts(self) -> ModelFacts:
        c = self.config
        return ModelFacts(
            name=self.name,
            source=self.source or "",
            parameters=self.parameter_count,
            context_length=c.context_length,
            vocab_size=self.tokenizer.vocab_size,
            layers=c.n_layer,
            heads=c.n_head,
            device=str(self.device),
            architecture=self.architecture
            or ("Llama-style" if c.position == "rope" else "GPT-2-style"),
            quantization=self.quantization,
            packing=self.packing,
            compiled=self.compiled,
        )

    def internals(self) -> LanguageModel:
        return self

    def set_threads(self, threads: int | None) -> int:
        """Run on this many CPU threads (None: chosen from the model's size); torch's count
        now. Threads are the process's: the last model to set them decides."""
        from tokenscope.lm.threads import check_threads, choose_threads

        n = choose_threads(self.parameter_count) if threads is None else check_threads(threads)
        torch.set_num_threads(n)
        return torch.get_num_threads()

    def __repr__(self) -> str:
        c = self.config
        return (
            f"LanguageModel({self.name!r}, {self.parameter_count:,} parameters, "
            f"{c.n_layer} layers, vocabulary {self.tokenizer.vocab_size}, "
            f"context {c.context_length})"
        )

    # ----- text <-> tokens -----------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        # (text with a lone surrogate is refused here with a message, not by the tokenizer
        # with a TypeError: arguments.unicode_text says why)
        return self.tokenizer.encode(arguments.unicode_text("text", text))

    def tokenize(self, text: str, *, cancel: CancelToken | None = None) -> list[Token]:
        """The text split into tokens, each with its id, readable label and character span."""
        tok = self.tokenizer
        return [
            Token(i, tok.token_text(i), tok.display(i), start, end)
            for i, start, end in tok.encode_with_offsets(arguments.unicode_text("text", text))
        ]

    def _context_ids(self, context: str | Sequence[int], name: str = "context") -> list[int]:
        if isinstance(context, str):
            ids = self.encode(arguments.text(name, context))
        else:
            ids = arguments.token_ids(name, context, self.config.vocab_size)
        bos = self.tokenizer.bos_id
        if self.add_bos and bos is not None and (not ids or ids[0] != bos):
            ids.insert(0, bos)
        if not ids:
            # Nothing to condition on: start from the document boundary the model was trained on.
            start = bos if bos is not None else self.tokenizer.eos_id
            if start is None:
                raise ValueError("the context is empty and the tokenizer has no BOS or EOS token")
            ids = [start]
        return ids

    def chat_prompt(self, prompt: str, *, system: str | None = None) -> str:
        """`prompt` as a user turn in the model's chat template, ready for the reply.

        Raises ValueError when the model has no chat template (it is not an instruct model).
        """
        if not self.chat_template:
            raise ValueError(f"{self.name} has no chat template; use the prompt as it is")
        from tokenscope.lm.formats.chat_template import render_chat

        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        tok = self.tokenizer
        return render_chat(
            self.chat_template,
            messages,
            bos_token=tok.token_text(tok.bos_id) if tok.bos_id is not None else "",
            eos_token=tok.token_text(tok.eos_id) if tok.eos_id is not None else "",
        )

    # ----- the next token ------------------------------------------------------------------

    def compile_decoding(
        self, progress: Callable[[str, int, int], None] | None = None, *, warm: bool = True
    ) -> float:
        """Decode one token at a time through a compiled step (tokenscope.lm.compiled).

        Faster per token once compiled; compiling takes minutes the first time on a small
        CPU (seconds later, from inductor's disk cache). Returns the seconds spent warming.
        Only CPU models on PyTorch 2.x with a C++ compiler; raises RuntimeError otherwise.
        """
        from tokenscope.lm.compiled import CompiledDecoder

        decoder = CompiledDecoder(self.transformer)
        seconds = decoder.warm(progress=progress) if warm else 0.0
        self._decoder = decoder
        self.forget_cache()
        return seconds

    def adopt_decoder(self, decoder: CompiledDecoder) -> None:
        """Use `decoder` (built for this model's transformer) for single new tokens from the
        next forward on; the KV cache's layout is the same, so a generation may be mid-way."""
        if decoder.transformer is not self.transformer:
            raise ValueError("that compiled step belongs to another model")
        self._decoder = decoder

    def compile_in_background(
        self, dtype: str | None = None, *, minimum: int | None = None
    ) -> BackgroundCompile | None:
        """Start compiling the decode step in the background (tokenscope.lm.background_compile);
        None, with `compile_note` saying why, where this model decodes eagerly."""
        from tokenscope.lm import background_compile as bc

        reason = bc.why_not(self, bc.WORTH_COMPILING if minimum is None else minimum)
        # Worth saying where the person may expect otherwise (not for a small model, nor
        # where they turned it off).
        self.compile_note = reason if reason and bc.worth_saying(reason) else ""
        if reason is not None:
            return None
        return bc.BackgroundCompile(self, dtype).start()

    @property
    def compiled(self) -> bool:
        return self._decoder is not None

    def forward(self, ids: torch.Tensor, cache: KVCache, *, last_only: bool = True) -> torch.Tensor:
        """Logits for `ids` (1, T) after what `cache` holds (it grows): the Transformer's
        forward, or the compiled step for one new token when decoding is compiled and no
        hook is attached (the compiled graph knows none)."""
        decoder = self._decoder
        if (
            decoder is not None
            and ids.shape == (1, 1)
            and not torch.is_grad_enabled()
            and not is_hooked(self.transformer)
        ):
            return decoder.step(ids, cache)
        logits: torch.Tensor = self.transformer(ids, cache, last_only=last_only)
        return logits

    def intervene(self, kind: str, value: object, fns: Sequence[tuple[str, HookFn]] = ()) -> None:
        """Make `fns` (hook point name, hook) the lasting change called `kind`, replacing the
        one of that kind before (no hooks: undo it). Every forward pass respects it until
        changed: the chart, generation, sweeps. `value` says what it is, for whoever asks
        (`intervention(kind)`). A name that is no hook point is refused (ValueError) with
        nothing changed."""
        points = [(hook_point(self.transformer, name), fn) for name, fn in fns]  # all, first
        _old, handles = self.interventions.pop(kind, (None, []))
        for handle in handles:
            handle.remove()
        new = [point.add(fn) for point, fn in points]
        self.forget_cache()  # what it holds was computed without the change
        if new:
            self.interventions[kind] = (value, new)

    def intervention(self, kind: str) -> object | None:
        """What the lasting change `kind` is (as given to `intervene`); None when none."""
        return self.interventions.get(kind, (None, []))[0]

    def forget_cache(self) -> None:
        """Drop the cached prefix (call after changing the weights in place)."""
        self._prefix_ids, self._prefix_cache = [], None

    @torch.inference_mode()
    def next_token_logits(self, ids: Sequence[int]) -> torch.Tensor:
        """Logits (V,) for the token after `ids`, reusing the cached work for a shared prefix.

        `ids` must fit the context window. Typing at the end of a long prompt therefore costs
        only the new tokens.
        """
        ids = list(ids)
        window = self.config.context_length
        if not 0 < len(ids) <= window:
            raise ValueError(f"need 1 to {window} token ids (got {len(ids)})")
        cache = self._prefix_cache
        if cache is None:
            cache = self._prefix_cache = self.transformer.new_cache()
        shared = 0
        for a, b in zip(self._prefix_ids, ids, strict=False):
            if a != b:
                break
            shared += 1
        shared = min(shared, len(ids) - 1)  # always run at least the last position
        cache.truncate(min(shared, cache.length))
        new = torch.tensor([ids[cache.length :]], device=self.device)
        try:
            logits = self.forward(new, cache)[0, -1]
        except BaseException:
            self.forget_cache()
            raise
        self._prefix_ids = ids
        return logits

    def predict_next_token_probabilities(
        self,
        context: str | Sequence[int],
        *,
        sampling: SamplingSettings | None = None,
        top_k: int = 10,
        cancel: CancelToken | None = None,
    ) -> NextTokenDistribution:
        """P(next token | context) over the whole vocabulary.

        A context longer than the window keeps its most recent tokens; the distribution's
        `dropped_tokens` says how many were cut. With `sampling`, the distribution also
        carries what sampling with those knobs would draw from.
        """
        top_k = arguments.whole("top_k", top_k, low=0, high=arguments.MAX_TOP_K_SHOWN)
        sampling = _checked_sampling(sampling)
        ids = self._context_ids(context)
        dropped = max(0, len(ids) - self.config.context_length)
        ids = ids[dropped:]
        logits = self.next_token_logits(ids)
        raw, sampled = sampling_distribution(logits, sampling or SamplingSettings(), ids)
        return NextTokenDistribution(
            raw,
            sampled,
            model=self,
            context_ids=ids,
            dropped_tokens=dropped,
            top_k=top_k,
            logits=logits,
        )

    def get_most_likely_token(self, distribution: Distribution) -> str:
        """The text of the most likely next token, e.g. " Jak"."""
        return distribution.most_likely.text

    # ----- scoring -------------------------------------------------------------------------

    @torch.inference_mode()
    def prompt_logprobs(
        self, ids: Sequence[int], top_k: int = 0
    ) -> list[tuple[float, list[tuple[int, float]]]]:
        """For each token of `ids` after the first: log P(token | the tokens before it) and the
        `top_k` most likely (id, log-probability) there, from one forward pass (what a server's
        "echo" returns). The ids must fit the context window."""
        return self.prompt_logprobs_batch([ids], top_k)[0]

    @torch.inference_mode()
    def prompt_logprobs_batch(
        self, batch: Sequence[Sequence[int]], top_k: int = 0
    ) -> list[list[tuple[float, list[tuple[int, float]]]]]:
        """`prompt_logprobs` of several prompts. Plain float weights: scored together, padded
        at the end to one length and run as one batch (a causal model's positions never see
        the padding after them, so each prompt's numbers are its own to ~1e-5), a few
        prompts at a time so that the logits stay within LOGITS_BUDGET values. Packed weights
        (int4, int8): one prompt after another, because their kernels round differently with
        the number of rows (up to 0.05 nats on SmolLM2), and a prompt must score the same
        alone or in company."""
        window, vocab = self.config.context_length, self.config.vocab_size
        checked = [arguments.token_ids("ids", ids, vocab) for ids in batch]
        for ids in checked:
            if len(ids) > window:
                raise ValueError(f"{len(ids)} tokens do not fit the context window ({window})")
        out: list[list[tuple[float, list[tuple[int, float]]]]] = [[] for _ in checked]
        todo = sorted((i for i, ids in enumerate(checked) if len(ids) >= 2),
                      key=lambda i: len(checked[i]))  # fmt: skip
        if self.packing is not None:  # (see above) one prompt at a time
            for i in todo:
                out[i] = self._score_prompts([checked[i]], top_k)[0]
            return out
        while todo:
            longest = len(checked[todo[0]])
            take = 0
            for i in todo:  # shortest first: similar lengths share a batch, little padding
                longest = max(longest, len(checked[i]))
                if take and (take + 1) * longest * vocab > LOGITS_BUDGET:
                    break
                take += 1
            group, todo = todo[:take], todo[take:]
            for i, scores in zip(group, self._score_prompts([checked[i] for i in group], top_k),
                                 strict=True):  # fmt: skip
                out[i] = scores
        return out

    def _score_prompts(
        self, prompts: list[list[int]], top_k: int
    ) -> list[list[tuple[float, list[tuple[int, float]]]]]:
        longest = max(len(p) for p in prompts)
        x = torch.tensor([p + [0] * (longest - len(p)) for p in prompts], device=self.device)
        logits = self.transformer(x)  # (B, T, V); positions past a prompt's end are padding
        out: list[list[tuple[float, list[tuple[int, float]]]]] = []
        for b, p in enumerate(prompts):
            logp = torch.log_softmax(logits[b, : len(p) - 1].float(), dim=-1)  # (T-1, V)
            target = x[b, 1 : len(p), None]
            own = logp.gather(1, target)[:, 0].tolist()
            if top_k <= 0:
                out.append([(v, []) for v in own])
                continue
            values, indices = logp.topk(min(top_k, logp.shape[-1]), dim=-1)
            out.append([
                (v, list(zip(i, lp, strict=True)))
                for v, i, lp in zip(own, indices.tolist(), values.tolist(), strict=True)
            ])  # fmt: skip
        return out

    @torch.inference_mode()
    def score_continuation(
        self,
        context: str | Sequence[int],
        continuation: str | Sequence[int],
        *,
        cancel: CancelToken | None = None,
    ) -> ContinuationScore:
        """How probable `continuation` is right after `context`, token by token.

        The one routine behind `NextTokenDistribution.probability_of`, few-shot answers and
        the trainer's probes. It runs through the prefix cache, so scoring after the prompt
        last predicted from costs only the continuation's own tokens. When the context and
        the continuation do not fit the window together, the context's oldest tokens are
        dropped (`dropped_tokens` says how many).
        """
        if isinstance(continuation, str):
            cont = self.encode(arguments.text("continuation", continuation))
        else:
            cont = arguments.token_ids("continuation", continuation, self.config.vocab_size)
        if not cont:
            raise ValueError("the continuation is empty")
        window = self.config.context_length
        if len(cont) > window:
            raise ValueError(f"a continuation of {len(cont)} tokens does not fit window {window}")
        ids = self._context_ids(context)
        # Every continuation token but the last is also input: keep what fits.
        dropped = max(0, len(ids) + len(cont) - 1 - window)
        ids = ids[dropped:]
        first = torch.log_softmax(self.next_token_logits(ids).float(), dim=-1)
        logprobs = [float(first[cont[0]])]
        for i in range(1, len(cont)):
            if cancel is not None:
                cancel.check()
            step = torch.log_softmax(self.next_token_logits(ids + cont[:i]).float(), dim=-1)
            logprobs.append(float(step[cont[i]]))
        top = int(first.argmax())
        return ContinuationScore(
            logprobs=tuple(logprobs),
            first_rank=1 + int((first > first[cont[0]]).sum()),
            top_text=self.tokenizer.token_text(top),
            top_probability=math.exp(float(first[top])),
            token_ids=tuple(cont),
            top_token_id=top,
            dropped_tokens=dropped,
        )

    def continuation_logprobs(
        self, context: str | Sequence[int], continuation: str | Sequence[int]
    ) -> list[float]:
        """log P of each continuation token given the context and the tokens before it."""
        return list(self.score_continuation(context, continuation).logprobs)

    def score(self, text: str) -> Surprisal:
        """Log probability and surprisal (bits) of every token of `text` given the tokens
        before it; `perplexity` and `bits_per_token` of the whole.

        The first token is scored after BOS (or EOS) when the tokenizer has one; otherwise it
        has no score. Texts longer than the window are scored in overlapping windows, each token
        seeing at least half a window of context (tokenscope.lm.inside.surprisal without the
        ranks and alternatives).
        """
        from tokenscope.lm.inside import surprisal

        return surprisal(self, arguments.text("text", text), top_k=0)

    # ----- generation ----------------------------------------------------------------------

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
    ) -> Generation:
        """An iterator of GenerationStep records; see tokenscope.lm.generation.

        `forced` = (step, token id): start by choosing that token where `step` was generated
        (continuing with an alternative), with the distribution captured then; it counts as
        the first of `max_tokens`. Every argument is checked here, before anything runs: a
        wrong type or an out-of-range value raises InvalidArgumentError naming it."""
        max_tokens = arguments.whole("max_tokens", max_tokens, low=0, high=arguments.MAX_NEW_TOKENS)
        top_k = arguments.whole("top_k", top_k, low=0, high=arguments.MAX_TOP_K_SHOWN)
        stop = arguments.strings(
            "stop", stop, most=arguments.MAX_STOP_STRINGS, max_chars=arguments.MAX_STOP_CHARS
        )
        first = None
        if forced is not None:
            source, token_id = forced
            token_id = arguments.token_ids("forced token", [token_id], self.config.vocab_size)[0]
            first = choose_alternative(source, token_id, self.tokenizer)
        return Generation(
            self,
            self._context_ids(prompt, "prompt"),
            max_tokens=max_tokens,
            sampling=_checked_sampling(sampling) or SamplingSettings(),
            stop=stop,
            top_k=top_k,
            first=first,
            cancel=cancel,
        )

    # ----- saving --------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write a native checkpoint folder (config.json, model.safetensors, tokenizer.json)."""
        from tokenscope.lm.checkpoint import save_checkpoint
        from tokenscope.lm.packed import is_packed

        if is_packed(self.transformer):
            raise ValueError(
                f"{self.name} holds packed weights ({self.packing}), which a checkpoint "
                "cannot store; load it with dtype='float32' to save it"
            )
        return save_checkpoint(self, folder)


def _checked_sampling(sampling: object) -> SamplingSettings | None:
    if sampling is not None and not isinstance(sampling, SamplingSettings):
        raise arguments.InvalidArgumentError(
            f"sampling must be a SamplingSettings (or None), not {type(sampling).__name__}"
        )
    return sampling
