"""The default corpus: the text the bundled model learns, built from small readable tables.

    python -m tokenscope.train.default_corpus OUT.txt

Tables in resources/corpus/: countries.tsv (country, capital, language, continent) and
words.tsv (English, Indonesian, French, and the kind of word). The script turns them into
sentences a learner can read: facts about capitals, translation lists in the few-shot format
of Tokenscope's examples, small arithmetic and simple sentences. Everything the bundled model
knows comes from here, which is the point: it shows what a language model learns from its
data, and nothing more. The output is the same for the same seed.

It also holds lists in invented languages: each document makes up a language whose words are
the English words with an ending of its own ("cat => catvek", "red => redvek"). The ending is
drawn afresh for every document, so no table can be memorised: the only way to predict
"cloud => cloudvek" is to read the ending off the examples above it. That is what teaches the
bundled model to learn in context (the `invented-language` preset), beside the
English->Indonesian table it simply remembers.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tokenscope.files import atomic_write_text, resource_path


@dataclass(frozen=True)
class Country:
    name: str
    capital: str
    language: str
    continent: str


@dataclass(frozen=True)
class Word:
    english: str
    indonesian: str
    french: str
    kind: str  # noun, adjective, number or other


def _rows(name: str) -> list[list[str]]:
    text = resource_path("corpus", name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


def load_tables() -> tuple[list[Country], list[Word]]:
    return [Country(*r) for r in _rows("countries.tsv")], [Word(*r) for r in _rows("words.tsv")]


CAPITAL_FACTS = (
    "The capital of {c.name} is {c.capital}.",
    "{c.capital} is the capital of {c.name}.",
    "{c.name} is a country in {c.continent}. The capital of {c.name} is {c.capital}.",
    "People in {c.name} speak {c.language}. The capital is {c.capital}.",
    "Q: What is the capital of {c.name}?\nA: The capital of {c.name} is {c.capital}.",
    "I traveled to {c.capital}, the capital of {c.name}.",
)

LANGUAGES = {"Indonesian": "indonesian", "French": "french"}


def capital_facts(rng: random.Random, countries: list[Country], rounds: int) -> Iterator[str]:
    for _ in range(rounds):
        for c in countries:
            yield rng.choice(CAPITAL_FACTS).format(c=c)


def capital_lists(rng: random.Random, countries: list[Country], count: int) -> Iterator[str]:
    for _ in range(count):
        picked = rng.sample(countries, rng.randint(2, 5))
        yield "\n".join(f"{c.name} => {c.capital}" for c in picked)


def translation_blocks(rng: random.Random, words: list[Word], count: int) -> Iterator[str]:
    """Few-shot translation lists, in the layout of the seed's example prompt."""
    for _ in range(count):
        language = rng.choice(list(LANGUAGES))
        field = LANGUAGES[language]
        header = f"Translate English to {language}:"
        shots = rng.sample(words, rng.randint(1, 5))
        query = rng.choice(words)
        lines = [header, *(f"{w.english} => {getattr(w, field)}" for w in shots)]
        if rng.random() < 0.7:
            lines.append(header)  # the header repeated before the query, as in the seed
        lines.append(f"{query.english} => {getattr(query, field)}")
        yield "\n".join(lines)


CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"


def invented_ending(rng: random.Random) -> str:
    """A made-up ending of one or two syllables: "vek", "zomi", "tal"."""
    syllables = [rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.6:
        syllables[-1] += rng.choice(CONSONANTS)
    return "".join(syllables)


def invented_language_name(rng: random.Random) -> str:
    return invented_ending(rng).capitalize() + "ish"


def invented_language_blocks(rng: random.Random, words: list[Word], count: int) -> Iterator[str]:
    """Lists in a language made up for the document: every word gets the same fresh ending.

    The name says nothing about the ending (both are drawn independently), so with no example
    the ending is a guess; each example shows it once more.
    """
    single = [w.english for w in words if " " not in w.english and w.kind != "other"]
    for _ in range(count):
        header = f"Translate English to {invented_language_name(rng)}:"
        ending = invented_ending(rng)
        picked = rng.sample(single, rng.randint(2, 7))
        lines = [header, *(f"{w} => {w}{ending}" for w in picked[:-1])]
        if rng.random() < 0.7:
            lines.append(header)
        lines.append(f"{picked[-1]} => {picked[-1]}{ending}")
        yield "\n".join(lines)


def dictionary_sentences(rng: random.Random, words: list[Word], rounds: int) -> Iterator[str]:
    for _ in range(rounds):
        for w in words:
            language = rng.choice(list(LANGUAGES))
            word = getattr(w, LANGUAGES[language])
            yield rng.choice(
                (
                    f'The {language} word for "{w.english}" is "{word}".',
                    f"In {language}, {w.english} is {word}.",
                    f"{w.english} in {language} is {word}.",
                )
            )


def arithmetic(rng: random.Random, count: int) -> Iterator[str]:
    for _ in range(count):
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        op = rng.choice("+-*")
        if op == "-" and b > a:
            a, b = b, a
        result = {"+": a + b, "-": a - b, "*": a * b}[op]
        yield f"{a} {op} {b} = {result}"


SIMPLE = (
    "The {a} is near the {b}.",
    "I like the {a} and the {b}.",
    "There is {an_a} next to the {b}.",
    "{An_a} is not {an_b}.",
    "My friend has {an_a}.",
    "The {a} is {adjective}.",
    "I see {number} {a}s.",
)


def _article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def simple_sentences(rng: random.Random, words: list[Word], count: int) -> Iterator[str]:
    nouns = [w.english for w in words if w.kind == "noun" and " " not in w.english]
    adjectives = [w.english for w in words if w.kind == "adjective"]
    numbers = [w.english for w in words if w.kind == "number" and w.english != "one"]
    for _ in range(count):
        a, b = rng.sample(nouns, 2)
        yield rng.choice(SIMPLE).format(
            a=a,
            b=b,
            an_a=_article(a),
            an_b=_article(b),
            An_a=_article(a).capitalize(),
            adjective=rng.choice(adjectives),
            number=rng.choice(numbers),
        )


def build(seed: int = 0, scale: int = 1) -> str:
    """The whole corpus as one string: documents separated by blank lines, shuffled."""
    rng = random.Random(seed)
    countries, words = load_tables()
    docs = [
        *capital_facts(rng, countries, 40 * scale),
        *capital_lists(rng, countries, 600 * scale),
        *translation_blocks(rng, words, 12000 * scale),
        *invented_language_blocks(rng, words, 6000 * scale),
        *dictionary_sentences(rng, words, 10 * scale),
        *arithmetic(rng, 3000 * scale),
        *simple_sentences(rng, words, 3000 * scale),
    ]
    rng.shuffle(docs)
    return "\n\n".join(docs) + "\n"


def write(path: str | Path, seed: int = 0, scale: int = 1) -> Path:
    """Write the corpus to `path`, atomically; a file that already holds it is left as it is
    (so token files made from it stay current)."""
    return write_text(path, build(seed, scale))


def write_text(path: str | Path, text: str) -> Path:
    """Write a built corpus to `path`, atomically, unless the file already holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.read_bytes() == text.encode("utf-8"):
            return path
    except OSError:
        pass
    atomic_write_text(path, text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=int, default=1)
    args = parser.parse_args()
    path = write(args.out, args.seed, args.scale)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
