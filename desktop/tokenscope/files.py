"""Files Tokenscope ships, files it writes, and reading back what it wrote: one place for all.

`resource_path` finds data installed with the package (tokenscope.resources: the bundled
model, presets, recipes, icons, reference tables). `atomic_write` replaces a file so that a
reader, a crash or a full disk never leaves it half written.

`read_file` and `load_json` read back a file Tokenscope saved (a cache entry, a session, a
few-shot prompt, a run's reports, settings) without trusting what is at its path now: a FIFO
would block a plain open() forever, /dev/zero never ends, a folder or a socket raises deep
inside a library, JSON nested 100,000 levels deep raises RecursionError. Each ends here in one
FileReadError naming the file. (Model files have the same guard, with the engine's
ModelFormatError, in tokenscope.lm.formats.safe_io.)
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO


def resource_path(*parts: str) -> Path:
    """A path inside the installed tokenscope.resources package, e.g. ("presets", "x.json")."""
    return Path(str(resources.files("tokenscope.resources"))).joinpath(*parts)


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> None:
    """Call `write(temporary_path)`, flush it to disk, then rename it over `path`.

    The temporary file lies beside the target (a rename within one file system is atomic);
    on any failure it is removed and `path` keeps its old content.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; ours are ordinary documents
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """`atomic_write` for UTF-8 text."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)

    atomic_write(path, write)


# ----- reading back what was saved ----------------------------------------------------------------

#: nesting of JSON objects and arrays: what Tokenscope saves nests fewer than 10 levels
MAX_JSON_DEPTH = 64

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileReadError(ValueError):
    """A file that cannot be read back as what it should be: missing, not a regular file,
    larger than such a file ever is, not UTF-8 text, or not sane JSON. The message is one
    line that names the file and says what is wrong."""


def shown(path: str | os.PathLike[str]) -> str:
    """A path for a message: very long ones are cut in the middle."""
    text = os.fspath(path)
    return text if len(text) <= 300 else f"{text[:140]}...{text[-140:]}"


def kind_of(mode: int) -> str:
    """What a stat mode describes, e.g. "a named pipe (FIFO)"; "a file" for regular files."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a file" if stat.S_ISREG(mode) else "a special file"


def _refuse_special(path: str | os.PathLike[str], mode: int, what: str) -> None:
    if not stat.S_ISREG(mode):
        raise FileReadError(
            f"{shown(path)} is {kind_of(mode)}, not a regular file; expected {what}"
        )


def _os_call(path: str | os.PathLike[str], what: str, call: Callable[[], int]) -> int:
    """`call()` (an os.stat or os.open of `path`), its failure said in one line."""
    try:
        return call()
    except FileNotFoundError:
        raise FileReadError(f"{shown(path)} does not exist; expected {what}") from None
    except OSError as e:
        raise FileReadError(f"{shown(path)} cannot be opened: {e.strerror or e}") from None
    except ValueError as e:  # a NUL byte in the name
        raise FileReadError(f"{shown(path)!r} is not a usable path ({e})") from None


def open_regular_file(path: str | os.PathLike[str], what: str) -> BinaryIO:
    """`path` opened for reading in binary if it is a regular file (symbolic links are
    followed: the Hugging Face cache is made of them); FileReadError otherwise.

    `what` says what the file should be, e.g. "a saved session". O_NONBLOCK lets a FIFO's
    open return at once instead of waiting for a writer; the descriptor's own fstat then
    decides, so a file swapped for something else after the first look is refused too.
    """
    # A look first: it names a socket, which open() cannot.
    _refuse_special(path, _os_call(path, what, lambda: os.stat(path).st_mode), what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = _os_call(path, what, lambda: os.open(path, flags))
    try:
        _refuse_special(path, os.fstat(fd).st_mode, what)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_file(path: str | os.PathLike[str], max_bytes: int, what: str) -> bytes:
    """The bytes of the regular file at `path`, refused (FileReadError) when it is larger
    than `max_bytes`, the most such a file can legitimately hold."""
    with open_regular_file(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise FileReadError(
                f"{shown(path)} has {size:,} bytes; {what} is never larger than {max_bytes:,}"
            )
        try:
            # Never f.read(max_bytes): Python allocates the whole buffer before it reads.
            data = f.read(size)
            while len(data) <= max_bytes:  # a file that grew after the fstat: on, to the limit
                chunk = f.read(min(1 << 20, max_bytes + 1 - len(data)))
                if not chunk:
                    break
                data += chunk
        except OSError as e:
            raise FileReadError(f"{shown(path)} cannot be read: {e.strerror or e}") from None
    if len(data) > max_bytes:
        raise FileReadError(f"{shown(path)} grew past {max_bytes:,} bytes while it was read")
    return data


def read_text_file(path: str | os.PathLike[str], max_bytes: int, what: str) -> str:
    """`read_file` decoded as UTF-8 (a leading byte-order mark dropped)."""
    data = read_file(path, max_bytes, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FileReadError(
            f"{shown(path)} is not UTF-8 text (byte {e.start:,}); expected {what}"
        ) from None


def parse_json_text(text: str | bytes, where: str, what: str) -> Any:
    """JSON text parsed, its nesting bounded; FileReadError naming `where` otherwise.

    The standard parser recurses once per level: "[" * 100_000 raises RecursionError
    (caught here); anything deeper than MAX_JSON_DEPTH is refused too, so that no code walking
    the value later can recurse too deeply.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise FileReadError(
            f"{where} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
            f"expected {what}"
        ) from None
    except RecursionError:
        raise FileReadError(
            f"{where} is nested too deeply to read (arrays and objects thousands of levels "
            f"deep); expected {what}"
        ) from None
    except ValueError as e:  # not UTF-8 bytes, an integer of more than 4,300 digits
        raise FileReadError(f"{where} is not valid JSON ({e}); expected {what}") from None
    if _depth_above(data, MAX_JSON_DEPTH):
        raise FileReadError(
            f"{where} is nested too deeply (arrays and objects more than {MAX_JSON_DEPTH} "
            f"levels deep); expected {what}"
        )
    return data


def _depth_above(value: Any, limit: int) -> bool:
    """Whether JSON `value` nests deeper than `limit` (walked without recursion)."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def load_json(path: str | os.PathLike[str], max_bytes: int, what: str) -> Any:
    """The JSON value in the regular file at `path` (at most `max_bytes` of UTF-8 text,
    nested at most MAX_JSON_DEPTH levels); FileReadError, one line naming the file, for
    anything else. The value is not checked further: that is the caller's job."""
    return parse_json_text(read_text_file(path, max_bytes, what), shown(path), what)
