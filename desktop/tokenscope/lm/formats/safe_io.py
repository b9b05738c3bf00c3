"""Reading a model's files without trusting them: regular files only, sizes and depth bounded.

Every loader opens its files through here. A path can name something that is not a file:
opening a FIFO for reading blocks until someone writes to it (forever), /dev/zero never ends,
a folder where a file belongs or a name longer than the system allows raise OSErrors deep
inside a library. Each is refused here first, with a ModelFormatError (or ModelNotFoundError)
that names the path and what was expected. JSON is parsed with its size and nesting bounded,
so a hostile file costs a clear message, never a RecursionError or gigabytes of memory.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from tokenscope.files import kind_of, shown
from tokenscope.lm.errors import ModelFormatError, ModelNotFoundError

#: config.json, tokenizer_config.json, generation_config.json, the shard index: real ones are
#: a few KB (tokenizer_config.json with a long chat template ~200 KB).
MAX_CONFIG_BYTES = 16 << 20
#: tokenizer.json: the largest real ones (262k-token vocabularies) are ~35 MB.
MAX_TOKENIZER_BYTES = 512 << 20
#: chat_template.jinja: real templates are a few KB.
MAX_TEMPLATE_BYTES = 1 << 20
#: nesting of JSON objects and arrays; real model files nest fewer than 10 levels.
MAX_JSON_DEPTH = 64


def stat_path(path: str | os.PathLike[str]) -> os.stat_result | None:
    """os.stat following links; None when nothing is there.

    Names the system cannot look up (too long, a loop of links, a NUL byte) raise
    ModelNotFoundError; a path that cannot be read raises ModelFormatError.
    """
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError:  # an embedded NUL byte
        raise ModelNotFoundError(
            f"{shown(path)!r} is not a usable path (it holds a NUL byte)"
        ) from None
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise ModelNotFoundError(
                f"{shown(path)}: the name is longer than this system allows for a file or folder"
            ) from None
        if e.errno == errno.ELOOP:
            raise ModelNotFoundError(f"{shown(path)} is a loop of symbolic links") from None
        raise ModelFormatError(f"{shown(path)} cannot be read: {e.strerror or e}") from None


def is_regular_file(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a regular file (following links); False for anything unreadable."""
    try:
        st = stat_path(path)
    except (ModelFormatError, ModelNotFoundError):
        return False
    return st is not None and stat.S_ISREG(st.st_mode)


def require_file(path: Path, what: str) -> os.stat_result:
    """The stat of a regular file at `path`, or ModelFormatError saying what is there instead.

    `what` says what the file should be, e.g. "the model's weights (safetensors)".
    """
    st = stat_path(path)
    if st is None:
        raise ModelFormatError(f"{shown(path)} does not exist; expected {what}")
    if not stat.S_ISREG(st.st_mode):
        raise ModelFormatError(
            f"{shown(path)} is {kind_of(st.st_mode)}, not a regular file; expected {what}"
        )
    return st


def open_file(path: Path, what: str) -> BinaryIO:
    """A regular file opened for reading; never blocks on a FIFO or a device.

    O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer; the
    descriptor's own stat then decides, so a file swapped after a check is caught too.
    """
    require_file(path, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise ModelFormatError(f"{shown(path)} cannot be opened: {e.strerror or e}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ModelFormatError(
                f"{shown(path)} is {kind_of(mode)}, not a regular file; expected {what}"
            )
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most `limit` bytes."""
    with open_file(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise ModelFormatError(
                f"{shown(path)} has {size:,} bytes; {what} is never larger than {limit:,}"
            )
        try:
            # Never read(limit): Python allocates the whole buffer before reading into it.
            data = f.read(size)
            while len(data) <= limit:  # a file that grew after the stat: on, up to the limit
                chunk = f.read(min(1 << 20, limit + 1 - len(data)))
                if not chunk:
                    break
                data += chunk
        except OSError as e:
            raise ModelFormatError(f"{shown(path)} cannot be read: {e.strerror or e}") from None
    if len(data) > limit:
        raise ModelFormatError(f"{shown(path)} grew past {limit:,} bytes while it was read")
    return data


def read_text(path: Path, limit: int, what: str) -> str:
    """A UTF-8 text file (a leading byte-order mark is dropped)."""
    try:
        return read_bytes(path, limit, what).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ModelFormatError(
            f"{shown(path)} is not UTF-8 text (byte {e.start:,}); expected {what}"
        ) from None


def check_depth(value: Any, where: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than `limit` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise ModelFormatError(
                f"{where} nests objects and arrays more than {limit} levels deep; "
                "no model file does"
            )
        if isinstance(node, dict):
            stack.extend(
                (child, depth + 1) for child in node.values() if isinstance(child, (dict, list))
            )
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, (dict, list)))


def parse_json(text: str, where: str, *, depth: int | None = MAX_JSON_DEPTH) -> Any:
    """Parsed JSON text; ModelFormatError naming `where` for anything that is not sane JSON.

    With `depth` None the caller checks nesting itself (e.g. skipping a large vocabulary).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelFormatError(
            f"{where} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})"
        ) from None
    except RecursionError:
        raise ModelFormatError(
            f"{where} nests objects and arrays too deeply to read; no model file does"
        ) from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise ModelFormatError(f"{where} is not valid JSON ({e})") from None
    if depth is not None:
        check_depth(data, where, depth)
    return data


def read_json_object(path: Path, what: str, limit: int = MAX_CONFIG_BYTES) -> dict[str, Any]:
    """A JSON object from a regular file of bounded size and nesting."""
    data = parse_json(read_text(path, limit, what), shown(path))
    if not isinstance(data, dict):
        raise ModelFormatError(
            f"{shown(path)} holds a JSON {type(data).__name__}, not an object; expected {what}"
        )
    return data


def read_template(path: Path) -> str:
    """A chat template file (chat_template.jinja)."""
    return read_text(path, MAX_TEMPLATE_BYTES, "a Jinja chat template")
