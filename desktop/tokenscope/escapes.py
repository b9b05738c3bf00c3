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


#: characters that move a terminal's cursor or change what it shows (C0 and C1 controls, DEL),
#: and those that reorder or hide text (bidirectional overrides, isolates)
_CONTROLS = {*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)}
_HIDDEN = {0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def printable(text: str, keep: str = "") -> str:
    """`text` safe to show in a terminal or a one-line label: control characters (an escape
    sequence's ESC among them), bidirectional overrides and lone surrogates written as \\xNN,
    \\uNNNN; the characters in `keep` (e.g. "\\n\\t" for a text shown whole) stay as they are.
    Text from a server, a file or a model goes through here before it reaches a terminal."""
    if text.isprintable() and not any(ord(c) in _HIDDEN for c in text):
        return text  # (the common case, at C speed)
    out: list[str] = []
    for char in text:
        code = ord(char)
        if char in keep:
            out.append(char)
        elif code in _CONTROLS:
            out.append(f"\\x{code:02x}")
        elif code in _HIDDEN or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)
