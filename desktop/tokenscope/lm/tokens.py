"""The records a model hands back about tokens, one vocabulary for every model and view.

    Token                a token of a text and the characters it covers
    TokenProbability     a candidate next token and its probability (raw and after sampling)
    GenerationStep       one generated token and the distribution it was drawn from
    ContinuationScore    how probable a given continuation is, token by token

Field names are the same wherever they appear: `token_id`, `text` (the token's own text),
`display` (a readable label: "␣Jak", "↵", "<E4>"), `probability` (under the raw distribution),
`sampled_probability` (under the distribution sampling draws from). Plain frozen records
with no PyTorch in them, so a model on a server (which needs no PyTorch) uses them too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Token:
    """A token of a tokenized text and the characters it covers (text[start:end]).

    `text` is the token's own text; a token that holds only part of a character's bytes
    shows U+FFFD there and shares that character's span with its neighbours.
    """

    token_id: int
    text: str
    display: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class TokenProbability:
    """A candidate next token: id, text (" Jak"), readable label ("␣Jak"), probabilities.

    A model on a server may name a token without its id; it then gets a stand-in id above
    any real vocabulary (see tokenscope.lm.remote), so views can still tell tokens apart.
    """

    token_id: int
    text: str
    display: str
    probability: float  # under the raw distribution
    sampled_probability: float  # under the distribution actually sampled from


@dataclass(frozen=True, slots=True)
class GenerationStep:
    """One generated token and the distribution it came from (captured then)."""

    index: int  # 0 for the first generated token
    token_id: int
    display: str  # readable label of the token ("␣Jak", "↵", "<E4>")
    text: str  # text this token completed ("" inside a multi-byte character)
    probability: float  # under the raw distribution
    sampled_probability: float  # under the distribution it was drawn from
    top_raw: tuple[TokenProbability, ...]  # most likely first
    top_sampled: tuple[TokenProbability, ...]  # by sampled probability, drawable ones only
    entropy: float  # of the raw distribution, in bits (a lower bound where not all is listed)
    elapsed: float  # seconds spent on this step
    context_shifted: bool = False  # the window was full and the oldest tokens were dropped
    is_eos: bool = False
    removed_mass: float = 0.0  # raw probability of the tokens the knobs made impossible
    # The distribution covered every token (the rest of it is known, just not kept); False
    # for a server's top-k list, whose unlisted tokens are one unknown share.
    full_vocabulary: bool = True


@dataclass(frozen=True, slots=True)
class ContinuationScore:
    """log P of each token of a continuation, and what the model preferred at its first token.

    Exact for a model whose forward pass is here. A model on a server that lists only its
    top k tokens may not list a continuation token: its probability is then at most the last
    listed one's, `upper_bound` is set, and where that happened at the first token,
    `first_rank` is None and the rank is known only to be greater than `rank_above`.
    """

    logprobs: tuple[float, ...]  # natural log, one per continuation token
    first_rank: int | None  # 1 when the continuation's first token was the most likely one
    top_text: str  # the most likely token where the continuation starts
    top_probability: float
    token_ids: tuple[int, ...] = ()  # the continuation's tokens (where the model says)
    top_token_id: int | None = None
    dropped_tokens: int = 0  # context tokens cut so that everything fits the window
    upper_bound: bool = False
    rank_above: int = 0  # with first_rank None: the first token ranks below this many

    @property
    def logprob(self) -> float:
        return sum(self.logprobs)

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)
