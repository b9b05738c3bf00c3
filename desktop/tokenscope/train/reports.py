"""What a run reports about its model as it trains, beside the losses: samples of text and
the probability of the probes' continuations (rank 0, on a full copy of the model).
"""

from __future__ import annotations

import math

from tokenscope.lm.language_model import LanguageModel
from tokenscope.lm.model import Transformer
from tokenscope.lm.sampling import SamplingSettings
from tokenscope.lm.tokenizer import Tokenizer
from tokenscope.train.config import TrainConfig
from tokenscope.train.events import EventWriter, ProbeEvent, SampleEvent


def report_samples(
    events: EventWriter, config: TrainConfig, step: int, model: Transformer, tokenizer: Tokenizer
) -> None:
    """A sample of text after each of the config's prompts (seeded: comparable over steps)."""
    c = config
    lm = LanguageModel(model, tokenizer, name=c.name)
    for i, prompt in enumerate(c.sample_prompts):
        gen = lm.generate(
            prompt,
            max_tokens=c.sample_tokens,
            sampling=SamplingSettings(temperature=0.8, top_k=40, seed=c.seed + i),
        )
        for _ in gen:
            pass
        events.emit(SampleEvent(step=step, prompt=prompt, text=gen.text))
    model.train()
    model._head_copy = None  # do not keep an inference copy of the head while training


def report_probes(
    events: EventWriter, config: TrainConfig, step: int, model: Transformer, tokenizer: Tokenizer
) -> None:
    """P(continuation | prompt) of each of the config's probes, now."""
    lm = LanguageModel(model, tokenizer, name=config.name)
    for probe in config.probes:
        ids = tokenizer.encode(probe.continuation)
        logprob = sum(lm.continuation_logprobs(lm.encode(probe.prompt) or [0], ids))
        events.emit(
            ProbeEvent(
                step=step,
                prompt=probe.prompt,
                continuation=probe.continuation,
                probability=math.exp(logprob),
                tokens=len(ids),
            )
        )
    model.train()
    model._head_copy = None
