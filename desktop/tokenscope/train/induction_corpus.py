"""The induction corpus: text in which copying from earlier in the context pays.

    python -m tokenscope.train.induction_corpus OUT.txt

Each line is a random string of 16-24 characters, a random stretch of up to 12 more, and the
first string again:

    kaeeUa5bnaehrfkad3ra  xbea  kaeeUa5bnaehrfkad3ra

Characters are drawn from 62 letters and digits with Zipf-like frequencies (a few common, many
rare), so counting letters helps a little; the big win is to notice that the line repeats and
copy the rest of the string from its first occurrence. That is what an induction head does, and
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

ALPHABET = string.ascii_lowercase + string.ascii_uppercase + string.digits
SPAN = (16, 24)  # the repeated string's length (inclusive)
GAP = (0, 12)  # what comes between the two copies (inclusive)
LINES = 40_000  # about 1.9 MB


def build(seed: int = 0, lines: int = LINES) -> str:
    """The whole corpus: `lines` lines, the same for the same seed."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(ALPHABET) + 1) ** 0.8
    weights /= weights.sum()
    letters = np.array(list(ALPHABET))
    spans = rng.integers(SPAN[0], SPAN[1] + 1, size=lines)
    gaps = rng.integers(GAP[0], GAP[1] + 1, size=lines)
    chars = letters[rng.choice(len(ALPHABET), size=int((spans + gaps).sum()), p=weights)]
    out, at = [], 0
    for span, gap in zip(spans.tolist(), gaps.tolist(), strict=True):
        first = "".join(chars[at : at + span])
        between = "".join(chars[at + span : at + span + gap])
        at += span + gap
        out.append(f"{first} {between} {first}" if gap else f"{first} {first}")
    return "\n".join(out) + "\n"


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
