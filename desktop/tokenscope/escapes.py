"""Backslash escapes for text typed on one line: a command line, a one-line field.

    unescape(r"\n\n")  -> "\n\n"     (what `--stop "\n\n"` means, as in most tools)
    escape("\n\n")     -> r"\n\n"    (how the few-shot editor shows a separator)

Understood: \\n newline, \\t tab, \\r carriage return, \\\\ a backslash. Any other backslash
stays as it is, so Windows paths and regular expressions are not mangled.
"""

from __future__ import annotations

_UNESCAPE = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
_ESCAPE = {v: "\\" + k for k, v in _UNESCAPE.items()}


def unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in _UNESCAPE:
            out.append(_UNESCAPE[text[i + 1]])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def escape(text: str) -> str:
    return "".join(_ESCAPE.get(char, char) for char in text)
