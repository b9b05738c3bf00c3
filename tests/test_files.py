"""Reading back what Tokenscope saved (tokenscope.files): regular files only, bounded in size
and nesting; everything else is one FileReadError naming the file."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from tokenscope.files import FileReadError, load_json, read_file, read_text_file

from .special_files import call_unblocked, replace_with


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("fifo", "is a named pipe (FIFO), not a regular file"),
        ("dev-zero", "is a character device, not a regular file"),
        ("folder", "is a folder, not a regular file"),
        ("socket", "is a socket, not a regular file"),
    ],
)
def test_what_is_not_a_regular_file_is_refused_without_blocking(kind, said):
    # A short folder of its own: a socket's path must fit in about 100 bytes.
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        path = replace_with(Path(folder) / "saved.json", kind)
        with pytest.raises(FileReadError) as caught:
            call_unblocked(lambda: load_json(path, 1000, "a saved thing"), path)
        assert str(caught.value) == f"{path} {said}; expected a saved thing"


def test_links_are_followed_to_the_file(tmp_path):
    """The Hugging Face cache is made of symbolic links to its blobs."""
    (tmp_path / "blob").write_text('{"a": 1}')
    (tmp_path / "link.json").symlink_to(tmp_path / "blob")
    assert load_json(tmp_path / "link.json", 100, "a config") == {"a": 1}
    (tmp_path / "dangling.json").symlink_to(tmp_path / "gone")
    with pytest.raises(FileReadError, match=r"dangling\.json does not exist; expected a config"):
        load_json(tmp_path / "dangling.json", 100, "a config")


def test_sizes_are_bounded(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b"1" * 1001)
    with pytest.raises(FileReadError, match="has 1,001 bytes; a cache entry is never larger "
                       "than 1,000"):  # fmt: skip
        read_file(path, 1000, "a cache entry")
    assert read_file(path, 1001, "a cache entry") == b"1" * 1001


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "is nested too deeply to read"),
        (b"[" * 65 + b"]" * 65, "is nested too deeply (arrays and objects more than 64"),
        (b"{ cut", "is not valid JSON (Expecting property name"),
        (b'{"a": "\xff"}', "is not UTF-8 text (byte 7)"),
        (b"1" * 5000, "is not valid JSON (Exceeds the limit"),
    ],
)
def test_json_that_is_not_sane_is_one_line(tmp_path, content, said):
    path = tmp_path / "x.json"
    path.write_bytes(content)
    with pytest.raises(FileReadError) as caught:
        load_json(path, 1 << 20, "a session")
    message = str(caught.value)
    assert message.startswith(f"{path} {said}") and message.endswith("expected a session")
    assert "\n" not in message


def test_what_is_sane_reads_as_it_is(tmp_path):
    path = tmp_path / "x.json"
    value = {"a": [1, 2.5, None, "ünï"], "b": [[[[1]]]] * 3, "nan": float("nan")}
    path.write_text("\ufeff" + json.dumps(value), encoding="utf-8")  # a byte order mark too
    read = load_json(path, 1 << 20, "a session")
    assert read["a"] == value["a"] and read["b"] == value["b"] and read["nan"] != read["nan"]
    assert read_text_file(path, 1 << 20, "text").startswith("{")
