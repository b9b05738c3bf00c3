"""Backslash escapes: `--stop "\\n"` read as a newline, and text from outside made safe to show
in a terminal (printable)."""

import pytest

from tokenscope.escapes import escape, printable, unescape


def test_unescape_reads_the_usual_escapes_and_leaves_the_rest():
    assert unescape(r"\n\t\r\\") == "\n\t\r\\"
    assert unescape(r"C:\Users\d+") == r"C:\Users\d+"  # paths and regular expressions kept
    assert unescape(escape("a\nb\tc\\d")) == "a\nb\tc\\d"


@pytest.mark.parametrize(
    "text, shown",
    [
        ("\x1b[2J", r"\x1b[2J"),  # clear the screen
        ("\x1b]0;title\x07", r"\x1b]0;title\x07"),  # set the window's title, and a bell
        ("a\rb", r"a\x0db"),  # back to the line's start, writing over it
        ("\x7f\x9b", r"\x7f\x9b"),  # DEL, and CSI as one C1 character
        ("abc\u202edef", r"abc\u202edef"),  # right-to-left override: shows "abcfed"
        ("\u2066x\u2069", r"\u2066x\u2069"),  # an isolate
        ("caf\udce9", r"caf\udce9"),  # a byte that was not UTF-8, as Python reads argv
        ("\ud800", r"\ud800"),  # half a surrogate pair
    ],
)
def test_printable_escapes_what_would_act_on_the_terminal(text, shown):
    assert printable(text) == shown
    assert printable(text).isprintable()


def test_printable_leaves_text_alone():
    for text in ("plain", "Jakarta 雅加达 👍🏽", "é̃", "", "a b"):
        assert printable(text) is text or printable(text) == text


def test_printable_keeps_what_it_is_told_to_keep():
    text = "line one\n\tindented\x1b[31m red"
    assert printable(text, keep="\n\t") == "line one\n\tindented\\x1b[31m red"
    assert printable(text) == "line one\\x0a\\x09indented\\x1b[31m red"  # one line
    assert "\n" not in printable("a\nb\r\nc")
