"""Few-shot prompts as data: an instruction, example pairs, a query and a template.

    prompt = FewShotPrompt.load(preset_path("english-indonesian"))
    prompt.with_shots(3).assemble().text     # "Translate English to Indonesian:\\n...cloud =>"

Files and bundled presets are JSON. Scoring the answer lives in tokenscope.lm.fewshot.scoring.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenscope.files import resource_path
from tokenscope.lm.arguments import unicode_text

if TYPE_CHECKING:
    from tokenscope.lm.tokenizer import Tokenizer

INPUT = "{input}"
OUTPUT = "{output}"
#: a few-shot prompt file: presets are a few KB; thousands of long examples fit in this
MAX_PROMPT_FILE_BYTES = 64 << 20


@dataclass(frozen=True)
class Example:
    """One demonstration: an input and the output the model should learn to give."""

    input: str
    output: str


@dataclass(frozen=True)
class PromptPart:
    """Where one part of an assembled prompt lies, in characters and (optionally) tokens.

    `kind` is "instruction", "example", "header" or "query"; `index` is the example's index for
    "example" parts, else 0. The character span is text[start:end]. The token span indexes
    `tokenizer.encode(text)` (no BOS) and covers every token that overlaps the characters, so
    a token straddling two parts (e.g. a separator merged into a word) belongs to both; it is
    None when the prompt was assembled without a tokenizer.
    """

    kind: str
    index: int
    start: int
    end: int
    token_start: int | None = None
    token_end: int | None = None


@dataclass(frozen=True)
class AssembledPrompt:
    """The prompt's text, where each part lies in it, and its length in tokens (None: unknown).

    Whether it fits a model's context window is reported where it matters, when scoring:
    see `AnswerScore.dropped_tokens`.
    """

    text: str
    parts: tuple[PromptPart, ...]
    token_count: int | None = None


def _check_template(template: str) -> None:
    if not isinstance(template, str):
        raise ValueError(f"the template must be text (got {type(template).__name__})")
    for name in (INPUT, OUTPUT):
        count = template.count(name)
        if count != 1:
            raise ValueError(
                f"the template must contain {name} exactly once (found {count}): {template!r}"
            )
    if template.index(INPUT) > template.index(OUTPUT):
        # The query is the template cut at {output}: its input must come before the cut.
        raise ValueError(f"the template must put {INPUT} before {OUTPUT}: {template!r}")


def _render(template: str, input_text: str, output_text: str) -> str:
    # Plain substitution, not str.format: user text and templates may hold other braces.
    before, after = template.split(OUTPUT, 1)
    return before.replace(INPUT, input_text) + output_text + after.replace(INPUT, input_text)


@dataclass(frozen=True)
class FewShotPrompt:
    """An instruction, demonstrations and a query, assembled into one prompt.

    The assembled text joins, with `separator`: the instruction (if any), each example through
    `template`, the query header (if any), and the query through the template cut at
    {output} with its trailing whitespace removed. That whitespace starts the answer instead
    (see `answer_text`), because tokenizers usually attach a space to the following word.
    """

    instruction: str = ""
    examples: tuple[Example, ...] = ()
    query: str = ""
    template: str = "{input} => {output}"
    separator: str = "\n"
    query_header: str = ""
    expected: str = ""
    candidates: tuple[str, ...] = ()
    name: str = ""
    notes: str = ""  # what this task teaches, shown beside it (presets say it)

    def __post_init__(self) -> None:
        _check_template(self.template)
        for f in ("instruction", "query", "separator", "query_header", "expected", "name", "notes"):
            value = getattr(self, f)
            if not isinstance(value, str):
                raise ValueError(f"{f} must be text (got {type(value).__name__})")
            unicode_text(f, value)  # (a file's "\\ud800" is refused here, naming the field)
        examples = tuple(self.examples)
        for n, e in enumerate(examples, 1):
            if not isinstance(e, Example):
                raise ValueError(f"examples must be Example objects (got {type(e).__name__})")
            unicode_text(f"example {n}'s input", e.input)
            unicode_text(f"example {n}'s output", e.output)
        candidates = tuple(self.candidates)
        for c in candidates:
            if not isinstance(c, str):
                raise ValueError(f"candidates must be text (got {type(c).__name__})")
            unicode_text("a candidate", c)
        # Frozen, yet callers may pass lists; tuples keep the prompt hashable and immutable.
        object.__setattr__(self, "examples", examples)
        object.__setattr__(self, "candidates", candidates)

    # ----- variants ------------------------------------------------------------------------

    def with_examples(self, examples: Iterable[Example]) -> FewShotPrompt:
        """The same prompt with other examples."""
        return replace(self, examples=tuple(examples))

    def with_shots(self, k: int) -> FewShotPrompt:
        """The same prompt with only its first k examples (k = 0: zero-shot)."""
        if k < 0:
            raise ValueError(f"the number of shots cannot be negative (got {k})")
        return replace(self, examples=self.examples[:k])

    # ----- text ----------------------------------------------------------------------------

    def _query_split(self) -> tuple[str, str]:
        """(the query as it ends the prompt, the whitespace moved in front of the answer)."""
        before = self.template.split(OUTPUT, 1)[0].replace(INPUT, self.query)
        stripped = before.rstrip()
        return stripped, before[len(stripped) :]

    def answer_text(self, answer: str) -> str:
        """The continuation to score for `answer`: " awan" for "awan" with "{input} => {output}"."""
        return self._query_split()[1] + answer

    def assemble(self, tokenizer: Tokenizer | None = None) -> AssembledPrompt:
        """The prompt's text and its parts; token spans and count only with a tokenizer."""
        pieces: list[tuple[str, int, str]] = []  # (kind, index, text)
        if self.instruction:
            pieces.append(("instruction", 0, self.instruction))
        for i, e in enumerate(self.examples):
            pieces.append(("example", i, _render(self.template, e.input, e.output)))
        if self.query_header:
            pieces.append(("header", 0, self.query_header))
        pieces.append(("query", 0, self._query_split()[0]))

        spans: list[tuple[str, int, int, int]] = []
        position = 0
        for n, (kind, index, text) in enumerate(pieces):
            if n:
                position += len(self.separator)
            spans.append((kind, index, position, position + len(text)))
            position += len(text)
        text = self.separator.join(piece for _, _, piece in pieces)

        if tokenizer is None:
            parts = tuple(PromptPart(k, i, s, e) for k, i, s, e in spans)
            return AssembledPrompt(text, parts, None)
        # One tokenization of the whole text: parts tokenized alone would split differently.
        offsets = tokenizer.encode_with_offsets(text)
        parts = tuple(PromptPart(k, i, s, e, *_token_span(offsets, s, e)) for k, i, s, e in spans)
        return AssembledPrompt(text, parts, len(offsets))

    # ----- files ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; `from_dict` reads it back."""
        return {
            "name": self.name,
            "instruction": self.instruction,
            "template": self.template,
            "separator": self.separator,
            "examples": [{"input": e.input, "output": e.output} for e in self.examples],
            "query_header": self.query_header,
            "query": self.query,
            "expected": self.expected,
            "candidates": list(self.candidates),
            **({"notes": self.notes} if self.notes else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FewShotPrompt:
        """A prompt from `to_dict`'s format; missing keys take their defaults.

        Raises ValueError for unknown keys (usually a typo that would silently do nothing)
        and for values of the wrong shape.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"a few-shot prompt must be a JSON object (got {type(d).__name__})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown key(s) {', '.join(map(repr, unknown))}; "
                f"expected some of: {', '.join(sorted(known))}"
            )
        values = dict(d)
        if "examples" in values:
            values["examples"] = tuple(_example(e, n) for n, e in enumerate(values["examples"]))
        if "candidates" in values:
            if isinstance(values["candidates"], str) or not isinstance(
                values["candidates"], Sequence
            ):
                raise ValueError("candidates must be a list of texts")
            values["candidates"] = tuple(values["candidates"])
        return cls(**values)

    def save(self, path: str | Path) -> Path:
        """Write the prompt as JSON (UTF-8); returns the path."""
        from tokenscope.files import atomic_write_text

        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> FewShotPrompt:
        """Read a prompt saved by `save` (or a preset); ValueError naming the file if it is bad."""
        from tokenscope.files import FileReadError, load_json

        path = Path(path)
        try:
            # A FIFO or /dev/zero at the path, or JSON nested 100,000 deep: one clear line.
            data = load_json(path, MAX_PROMPT_FILE_BYTES, "a few-shot prompt (JSON)")
        except FileReadError as e:
            raise ValueError(f"cannot read the few-shot prompt: {e}") from None
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path} is not a valid few-shot prompt: {e}") from e


def _example(item: Any, n: int) -> Example:
    if (
        isinstance(item, Mapping)
        and set(item) == {"input", "output"}
        and all(isinstance(v, str) for v in item.values())
    ):
        return Example(item["input"], item["output"])
    raise ValueError(f"example {n} must be an object with exactly 'input' and 'output' texts")


def _token_span(offsets: Sequence[tuple[int, int, int]], start: int, end: int) -> tuple[int, int]:
    """Indices [first, last + 1) of the tokens whose characters overlap [start, end)."""
    hits = [i for i, (_, s, e) in enumerate(offsets) if s < end and e > start]
    if hits:
        return hits[0], hits[-1] + 1
    # An empty part: an empty span where it would begin.
    at = next((i for i, (_, s, _) in enumerate(offsets) if s >= start), len(offsets))
    return at, at


# ----- presets -----------------------------------------------------------------------------


def _presets_folder() -> Path:
    return resource_path("presets")


def list_presets() -> list[str]:
    """Names of the bundled few-shot presets, e.g. ["capitals", "english-indonesian", ...]."""
    folder = _presets_folder()
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def preset_path(name: str) -> Path:
    """The JSON file of a bundled preset; ValueError listing the presets for an unknown name."""
    path = _presets_folder() / f"{name}.json"
    if not path.is_file():
        raise ValueError(
            f"no few-shot preset named {name!r}; presets: {', '.join(list_presets()) or 'none'}"
        )
    return path


def load_prompt(name_or_path: str | Path) -> FewShotPrompt:
    """A bundled preset by name (e.g. "english-indonesian"), or a prompt from a JSON file."""
    path = Path(name_or_path).expanduser()
    if path.suffix.lower() == ".json" or path.exists():
        return FewShotPrompt.load(path)
    return FewShotPrompt.load(preset_path(str(name_or_path)))
