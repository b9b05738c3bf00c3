"""The induction corpus: text in which copying from earlier in the context pays.

    python -m tokenscope.train.induction_corpus OUT.txt

Random letters, in blocks of 64, and in every block a string of 16-24 letters said twice:

    aΘbЖeaçκ1ÉcaпdaTиfäa2bÛkeΣaζcgabÉgaΩ3bcqaфXdaTиfäa2bÛkeΣaζcgabÉgaΩ3bc...
                  ^^^^^^^^^^^^^^^^^^^^^^^          ^^^^^^^^^^^^^^^^^^^^^^^ the same string

Letters come from 200 (Latin, Greek, Cyrillic) with Zipf frequencies (a few common, most rare),
so counting letters helps a little; the big win is to notice that a string is repeating and to
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

#: 200 letters (Latin, Greek, Cyrillic, accented Latin): with this many, a letter seldom
#: occurs twice in one string, so the earlier occurrence says unambiguously what comes next
ALPHABET = (
    string.ascii_lowercase + string.ascii_uppercase + string.digits
    + "".join(chr(c) for c in range(0x3B1, 0x3CA))  # α..ω
    + "".join(chr(c) for c in range(0x391, 0x3AA) if c != 0x3A2)  # Α..Ω
    + "".join(chr(c) for c in range(0x430, 0x450))  # а..я
    + "".join(chr(c) for c in range(0x410, 0x430))  # А..Я
    + "".join(chr(c) for c in range(0xC0, 0xFF) if c not in (0xD7, 0xF7))  # À..þ
)[:200]
BLOCK = 64  # characters per block: one repeated string in each
SPAN = (16, 24)  # the repeated string's length (inclusive)
BLOCKS = 30_000  # about 1.9 M characters


def build(seed: int = 0, blocks: int = BLOCKS) -> str:
    """The whole corpus: `blocks` blocks of BLOCK characters, one after the other, each with
    one string said twice; the same for the same seed."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(ALPHABET) + 1)  # Zipf: a few letters common, most rare
    weights /= weights.sum()
    letters = np.array(list(ALPHABET))
    out = letters[rng.choice(len(ALPHABET), size=(blocks, BLOCK), p=weights)]
    for row in out:
        span = int(rng.integers(SPAN[0], SPAN[1] + 1))
        first = int(rng.integers(0, BLOCK - 2 * span + 1))
        second = int(rng.integers(first + span, BLOCK - span + 1))
        row[second : second + span] = row[first : first + span]
    return "".join(out.reshape(-1).tolist())


#: the seed of the text the ICL score is measured on by default (the recipe trains on seed 0's)
HELD_OUT_SEED = 99


def held_out(blocks: int = 1000) -> str:
    """Text of the same kind the recipe never trained on: where its ICL score is measured."""
    return build(seed=HELD_OUT_SEED, blocks=blocks)


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
