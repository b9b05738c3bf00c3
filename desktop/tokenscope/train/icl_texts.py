"""The texts in-context learning is measured on by default, by name.

    text, said = icl_text("shakespeare")   # natural prose: the bundled sample's last part
    text, said = icl_text("induction")     # random strings said twice (the recipe's kind)

Olsson et al. measure the ICL score on natural text; across model sizes that is the fair text
(`shakespeare`, the default). The induction recipe's models never saw prose: their runs are
measured on held-out text of their own corpus (`induction`), where only copying helps.
"""

from __future__ import annotations

from tokenscope.files import resource_path

NAMES = ("shakespeare", "induction")
#: of the sample, from its end: 8 windows of 512 tokens need ~15,000 characters of prose
SAMPLE_CHARS = 200_000


def icl_text(name: str) -> tuple[str, str]:
    """(text, how to name it) for one of NAMES; ValueError for another name."""
    if name == "shakespeare":
        path = resource_path("sample", "shakespeare.txt")
        text = path.read_text(encoding="utf-8")[-SAMPLE_CHARS:]
        return text, "the bundled Shakespeare sample (its last 200,000 characters)"
    if name == "induction":
        from tokenscope.train import induction_corpus

        return induction_corpus.held_out(), "held-out text of the induction corpus"
    raise ValueError(f"no text named {name!r} (known: {', '.join(NAMES)}, or give a file)")
