"""The induction corpus: text in which copying from earlier in the context pays.

    python -m tokenscope.train.induction_corpus OUT.txt

Random strings of 8-24 letters, each said twice, one after the other:

    Qm3kZr0aPxWQm3kZr0aPxWf8TyLq2Bc9f8TyLq2Bc9...
    (Qm3kZr0aPxW twice, then f8TyLq2Bc9 twice: there are no spaces)

Each of the 62 letters and digits is as likely as any other, so no counting of letters helps:
the only way to predict a letter is to notice that a string is repeating and to
copy the rest of it from its first occurrence. That is what an induction head does, and
a small Transformer trained on this text forms induction heads after a few thousand steps, with
a sudden drop in the loss on the later characters of its window (the in-context learning score).
The recipe `tokenscope train --recipe induction` trains one on this corpus.
"""

from __future__ import annotations

import argparse
import string
from pathlib import Path

import numpy as np

from tokenscope.train.default_corpus import write_text

ALPHABET = string.ascii_lowercase + string.ascii_uppercase + string.digits  # 62, all as likely
SPAN = (8, 24)  # the repeated string's length (inclusive)
CHARACTERS = 1_920_000


def build(seed: int = 0, characters: int = CHARACTERS) -> str:
    """The whole corpus: random strings of 8-24 letters, each said twice, one after the other,
    `characters` long; the same for the same seed."""
    rng = np.random.default_rng(seed)
    letters = np.array(list(ALPHABET))
    lengths = rng.integers(SPAN[0], SPAN[1] + 1, size=characters // (2 * SPAN[0]) + 1)
    strings = letters[rng.integers(0, len(ALPHABET), size=int(lengths.sum()))]
    out, at, total = [], 0, 0
    for n in lengths.tolist():
        piece = "".join(strings[at : at + n].tolist())
        out += [piece, piece]
        at, total = at + n, total + 2 * n
        if total >= characters:
            break
    return "".join(out)[:characters]


#: the seed of the text the ICL score is measured on by default (the recipe trains on seed 0's)
HELD_OUT_SEED = 99


def held_out(characters: int = 64_000) -> str:
    """Text of the same kind the recipe never trained on: where its ICL score is measured."""
    return build(seed=HELD_OUT_SEED, characters=characters)


def write(path: str | Path, seed: int = 0) -> Path:
    """Write the corpus to `path`, atomically; a file that already holds it is left alone."""
    return write_text(path, build(seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = write(args.out, args.seed)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
