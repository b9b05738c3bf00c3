"""Seeded mutations of the seed files: each case is one broken or hostile model on disk.

    make_case(kind, rng, corpus, case_dir) -> (path to load, what was done)

Kinds (the file kinds of issue 17):
    gguf         GGUF files: truncations, bit flips, random bytes, then structured changes
                 made on the file as data (absurd counts, dimensions, types, offsets, hostile
                 metadata values, vocabularies, merges, chat templates) and written byte by byte
    safetensors  model.safetensors of native and Hugging Face folders: byte damage, and header
                 changes (integer dtypes with the right shapes, shapes, offsets, nesting, NaN)
    config       config.json (native and Hugging Face), tokenizer_config.json,
                 generation_config.json: hostile values, wrong types, unknown keys, nesting
    tokenizer    tokenizer.json: ids of 2**31, gaps, wrong types, regexes that backtrack
                 without end, unknown types, deep nesting, byte damage
    special      special files where a model or one of its files belongs: FIFOs, /dev/null,
                 /dev/zero, folders, sockets, link loops, names too long for the system

The same (kind, seed) always gives the same case.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from fuzz_corpus import Corpus
from fuzz_formats import (
    ARRAY,
    BOOL,
    F32,
    F64,
    I32,
    I64,
    STRING,
    U8,
    U32,
    U64,
    GGUFSpec,
    Raw,
    write_gguf,
    write_safetensors,
)

KINDS = ("gguf", "safetensors", "config", "tokenizer", "special")

# ----- hostile values -----------------------------------------------------------------------

HUGE_INTS = [0, 1, -1, 2, 3, 7, 255, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53, 2**62,
             2**63 - 1, 10**9, 10**12, 10**18]  # fmt: skip
ODD_FLOATS = [0.0, -0.0, -1.0, 1e-45, 1e-300, 1e38, 3.4e38, 1e300, float("nan"), float("inf"),
              float("-inf"), 0.5, 1.0]  # fmt: skip

HOSTILE_TEMPLATES = [
    '{{ "x" * 3000000000 }}',
    '{{ "x" * 30000000 }}',
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    '{% set ns = namespace(s="ab") %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}'
    "{% endfor %}{{ ns.s }}",
    "{% set ns = namespace(n=3) %}{% for i in range(60) %}{% set ns.n = ns.n * ns.n %}"
    "{% endfor %}{{ ns.n }}",
    '{{ "x".center(2000000000) }}',
    '{{ "{:>999999999}".format(1) }}',
    '{{ "%999999999d" % 1 }}',
    "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
    "{% macro f(n) %}{% if n > 1 %}{{ f(n - 1) }}{{ f(n - 2) }}{% endif %}{% endmacro %}"
    "{{ f(50) }}",
    '{% set s = "x" * 100000 %}{{ s.replace("", s) }}',
    "{{ lipsum(100000000) }}",
    '{{ "".__class__.__mro__[1].__subclasses__() }}',
    "{{ raise_exception('no') }}",
    "{% for %}",
    "{% if 1 %}" * 3000 + "{% endif %}" * 3000,
    "{{ messages[0]['content'] * 100000000 }}",
    "{{ 2 ** 100000000 }}",
    "{{ (range(100000) | list) | join('x' * 100000) }}",
    '{% set s = "\\n" * 100000 %}{{ s | indent(100000) }}',
    "{{ cycler(1,2).__init__.__globals__ }}",
    "{{ 1 / 0 }}",
    "{{ undefined_name.attribute.more }}",
]

HOSTILE_JSON: list[Any] = [None, True, False, 0, -1, 1, 2, 7, 2**31, 2**32, 2**63, 10**30, 1e308,
                           -1e308, 0.5, float("nan"), float("inf"), "", "x" * 100_000, "32",
                           "\x00", [], {}, [1, 2], {"a": 1}, [[[[[[]]]]]],
                           {"type": "Nope"}]  # fmt: skip


def hostile_json(rng: random.Random) -> Any:
    return rng.choice(HOSTILE_JSON)


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


# ----- byte damage --------------------------------------------------------------------------


def damage_bytes(data: bytes, rng: random.Random, header: int) -> tuple[bytes, str]:
    """Truncate, flip bits, overwrite, insert or delete bytes; header-biased positions."""

    def position() -> int:
        if header and rng.random() < 0.7:
            return rng.randrange(min(header, len(data)))
        return rng.randrange(len(data))

    how = rng.choice(["truncate", "flip", "flip", "random", "insert", "delete", "zero"])
    data = bytearray(data)
    if how == "truncate":
        cut = position()
        return bytes(data[:cut]), f"truncated at {cut}"
    if how == "flip":
        n = rng.choice([1, 1, 2, 3, 8, 32])
        spots = [position() for _ in range(n)]
        for spot in spots:
            data[spot] ^= 1 << rng.randrange(8)
        return bytes(data), f"{n} bit flips at {spots[:4]}"
    start = position()
    size = rng.choice([1, 2, 4, 8, 16, 64, 256])
    if how == "random":
        data[start : start + size] = rng.randbytes(size)
    elif how == "zero":
        data[start : start + size] = bytes(len(data[start : start + size]))
    elif how == "insert":
        data[start:start] = rng.randbytes(size)
    else:
        del data[start : start + size]
    return bytes(data), f"{how} {size} bytes at {start}"


# ----- GGUF ---------------------------------------------------------------------------------

_GGUF_KEYS_OF_INTEREST = [
    "{a}.context_length", "{a}.embedding_length", "{a}.feed_forward_length", "{a}.block_count",
    "{a}.attention.head_count", "{a}.attention.head_count_kv", "{a}.rope.freq_base",
    "{a}.attention.layer_norm_rms_epsilon", "{a}.attention.layer_norm_epsilon",
    "{a}.rope.dimension_count", "{a}.attention.key_length", "{a}.attention.sliding_window",
    "{a}.rope.scaling.type", "{a}.rope.scaling.factor", "general.architecture", "general.name",
    "general.alignment", "general.file_type", "tokenizer.ggml.model", "tokenizer.ggml.pre",
    "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.add_space_prefix", "tokenizer.ggml.scores", "tokenizer.chat_template",
]  # fmt: skip


def _hostile_gguf_value(rng: random.Random) -> tuple[int, Any]:
    kind = rng.choice([U32, I32, U64, I64, F32, F64, BOOL, STRING, ARRAY, U8, 13, 99])
    if kind in (U32, I32, U64, I64, U8):
        return kind, rng.choice(HUGE_INTS)
    if kind in (F32, F64):
        return kind, rng.choice(ODD_FLOATS)
    if kind == BOOL:
        return kind, rng.choice([0, 1, 2, 255])
    if kind == STRING:
        return kind, rng.choice(["", "llama", "gpt2", "x" * 70_000, "\udcff", "{{", "mamba"])
    if kind == ARRAY:
        item = rng.choice([U32, F32, STRING, ARRAY, I64])
        if item == ARRAY:
            inner: Any = (U32, [1])
            for _ in range(rng.choice([1, 3, 10, 200])):
                inner = (ARRAY, [inner])
            return ARRAY, inner
        values = {U32: [1, 2], F32: [1.0, float("nan")], STRING: ["a", ""], I64: [-1]}[item]
        return ARRAY, (item, values * rng.choice([0, 1, 4]))
    return kind, 0  # an unknown type


def _mutate_tokens(spec: GGUFSpec, rng: random.Random) -> str:
    tokens = list(spec.get("tokenizer.ggml.tokens")[1]) or ["a"]
    how = rng.choice(["duplicate", "empty", "drop", "huge", "ints", "add", "bad-utf8"])
    i = rng.randrange(len(tokens))
    if how == "duplicate":
        tokens[i] = tokens[rng.randrange(len(tokens))]
    elif how == "empty":
        tokens[i] = ""
    elif how == "drop":
        del tokens[-rng.choice([1, 5, 100]) :]
    elif how == "huge":
        tokens[i] = "a" * rng.choice([5000, 70_000, 300_000])
    elif how == "add":
        tokens += [f"extra{j}" for j in range(rng.choice([1, 50, 5000]))]
    elif how == "bad-utf8":
        tokens[i] = b"\xff\xfe\x80".decode("latin-1")
    if how == "ints":
        spec.set("tokenizer.ggml.tokens", ARRAY, (U32, list(range(len(tokens)))))
    else:
        spec.set("tokenizer.ggml.tokens", ARRAY, (STRING, tokens))
    return f"tokens: {how} at {i}"


def _mutate_merges(spec: GGUFSpec, rng: random.Random) -> str:
    merges = list(spec.get("tokenizer.ggml.merges")[1]) or ["a b"]
    how = rng.choice(["no-space", "unknown", "empty", "ints", "three", "many"])
    i = rng.randrange(len(merges))
    if how == "no-space":
        merges[i] = merges[i].replace(" ", "")
    elif how == "unknown":
        merges[i] = "zzqq yyxx"
    elif how == "empty":
        merges = []
    elif how == "three":
        merges[i] = "a b c"
    elif how == "many":
        merges = merges * 50
    if how == "ints":
        spec.set("tokenizer.ggml.merges", ARRAY, (U32, [1, 2, 3]))
    else:
        spec.set("tokenizer.ggml.merges", ARRAY, (STRING, merges))
    return f"merges: {how}"


def _mutate_tensor_directory(spec: GGUFSpec, rng: random.Random) -> str:
    i = rng.randrange(len(spec.tensors))
    name, dims, qtype, data = spec.tensors[i]
    how = rng.choice(["dims", "dims", "type", "offset", "rename", "drop", "duplicate", "nan",
                      "huge-values", "rank", "rope_freqs"])  # fmt: skip
    if how == "dims":
        dims = list(dims)
        dims[rng.randrange(len(dims))] = rng.choice([0, 1, 2, 3, 31, 2**20, 2**40, 2**63])
    elif how == "rank":
        dims = rng.choice([[], [1] * 5, [*dims, 1], dims[:1]])
    elif how == "type":
        qtype = rng.choice([1, 2, 3, 8, 10, 12, 14, 16, 20, 30, 31, 39, 99, 2**31])
    elif how == "offset":
        spec.offset_overrides[i] = rng.choice([0, 1, 33, 2**40, 2**64 - 1, len(data) * 7])
    elif how == "rename":
        name = rng.choice(["blk.9.attn_q.weight", "blk.0.extra.weight", "", "x" * 300,
                           "token_embd.weight", "output.weight", "blk.0.attn_q.bias"])  # fmt: skip
    elif how == "drop":
        del spec.tensors[i]
        return f"tensor {name} dropped"
    elif how == "duplicate":
        spec.tensors.append((name, dims, qtype, data))
        return f"tensor {name} duplicated"
    elif how in ("nan", "huge-values") and qtype == 0 and len(data) >= 4:
        values = np.frombuffer(data, dtype=np.float32).copy()
        spots = rng.sample(range(len(values)), min(len(values), rng.choice([1, 4, 64])))
        values[spots] = float("nan") if how == "nan" else rng.choice([1e38, -3e38, 1e20, 1e7])
        data = values.tobytes()
    elif how == "rope_freqs":
        values = np.asarray([rng.choice([1.0, 8.0, 0.0, -1.0, float("nan"), 1e30])] * 8)
        spec.tensors.append(("rope_freqs.weight", [len(values)], 0, values.astype("<f4").tobytes()))
        return "rope_freqs added"
    spec.tensors[i] = (name, dims, qtype, data)
    return f"tensor #{i} {how}"


def _gguf_structured(spec: GGUFSpec, rng: random.Random) -> str:
    arch = spec.get("general.architecture")
    how = rng.choice(
        ["value", "value", "value", "value", "drop-key", "retype", "tokens", "tokens", "merges",
         "token-types", "model", "template", "template", "tensors", "tensors", "tensors",
         "counts", "version", "scores"]
    )  # fmt: skip
    if how in ("value", "drop-key", "retype"):
        key = rng.choice(_GGUF_KEYS_OF_INTEREST).format(a=arch)
        if how == "drop-key":
            spec.metadata = [m for m in spec.metadata if m[0] != key]
            return f"metadata {key} removed"
        if how == "retype":
            old = spec.get(key)
            spec.set(
                key,
                rng.choice([U32, F32, STRING, BOOL, U64, 13, 2**31]),
                old if old is not None else 1,
            )
            return f"metadata {key} given another type"
        kind, value = _hostile_gguf_value(rng)
        spec.set(key, kind, value)
        return f"metadata {key} = {kind}:{str(value)[:30]}"
    if how == "tokens":
        return _mutate_tokens(spec, rng)
    if how == "merges":
        return _mutate_merges(spec, rng)
    if how == "token-types":
        n = len(spec.get("tokenizer.ggml.tokens")[1])
        choice = rng.choice(["short", "odd", "float"])
        if choice == "short":
            spec.set("tokenizer.ggml.token_type", ARRAY, (I32, [1] * (n - 1)))
        elif choice == "odd":
            spec.set(
                "tokenizer.ggml.token_type",
                ARRAY,
                (I32, [rng.choice([1, 3, 4, 6, 99, -5]) for _ in range(n)]),
            )
        else:
            spec.set("tokenizer.ggml.token_type", ARRAY, (F32, [float("nan")] * n))
        return f"token types: {choice}"
    if how == "model":
        value = rng.choice(["llama", "rwkv", "bert", "", "gpt2"])
        spec.set("tokenizer.ggml.model", STRING, value)
        return f"tokenizer model {value}"
    if how == "scores":
        n = len(spec.get("tokenizer.ggml.tokens")[1])
        spec.set("tokenizer.ggml.model", STRING, "llama")
        spec.set("tokenizer.ggml.scores", ARRAY, (F32, [rng.choice(ODD_FLOATS) for _ in range(n)]))
        return "sentencepiece scores"
    if how == "template":
        template = rng.choice(HOSTILE_TEMPLATES)
        spec.set("tokenizer.chat_template", STRING, template)
        return f"chat template {template[:40]!r}"
    if how == "tensors":
        return _mutate_tensor_directory(spec, rng)
    if how == "counts":
        if rng.random() < 0.5:
            spec.n_tensors_override = rng.choice([0, len(spec.tensors) + 1, 2**32, 2**63])
        else:
            spec.n_kv_override = rng.choice([0, len(spec.metadata) + 1, 2**20, 2**63])
        return "header counts"
    spec.version = rng.choice([0, 1, 2, 4, 2**31])
    return f"version {spec.version}"


def gguf_case(rng: random.Random, corpus: Corpus, case_dir: Path) -> tuple[Path, str]:
    name = rng.choice(sorted(corpus.ggufs))
    spec = corpus.ggufs[name].copy()
    path = case_dir / f"{name}.gguf"
    if rng.random() < 0.35:
        data = corpus.gguf_files[name].read_bytes()
        header = len(write_gguf(GGUFSpec(spec.metadata, [])))
        damaged, what = damage_bytes(data, rng, header)
        path.write_bytes(damaged)
        return path, f"{name}: {what}"
    what = _gguf_structured(spec, rng)
    if rng.random() < 0.2:
        what += "; " + _gguf_structured(spec, rng)
    path.write_bytes(write_gguf(spec))
    return path, f"{name}: {what}"


# ----- safetensors --------------------------------------------------------------------------

_INT_DTYPES = {"I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
               "BOOL": np.bool_, "F64": np.float64, "F16": np.float16}  # fmt: skip


def _copy_folder(corpus: Corpus, name: str, case_dir: Path) -> Path:
    target = case_dir / name
    shutil.copytree(corpus.folders[name], target)
    return target


def _retyped(header: dict, data: bytes, rng: random.Random) -> tuple[dict, bytes, str]:
    """One tensor re-encoded as another dtype with the same shape (offsets made consistent)."""
    names = [k for k in header if k != "__metadata__"]
    target = rng.choice(names)
    dtype = rng.choice(sorted(_INT_DTYPES))
    out, new_data = {"__metadata__": header["__metadata__"]}, bytearray()
    for name in names:
        entry = dict(header[name])
        start, end = entry["data_offsets"]
        raw = data[start:end]
        if name == target:
            values = np.frombuffer(raw, dtype=np.float32)
            raw = (values * 100).astype(_INT_DTYPES[dtype]).tobytes()
            entry["dtype"] = dtype
        entry["data_offsets"] = [len(new_data), len(new_data) + len(raw)]
        new_data += raw
        out[name] = entry
    return out, bytes(new_data), f"{target} stored as {dtype} with its shape"


def _safetensors_structured(header: dict, data: bytes, rng: random.Random) -> tuple[bytes, str]:
    header = json.loads(json.dumps(header))
    names = [k for k in header if k != "__metadata__"]
    name = rng.choice(names)
    entry = header[name]
    how = rng.choice(["retype", "retype", "dtype", "shape", "offsets", "drop", "rename",
                      "extra", "not-object", "nested", "metadata", "length", "values",
                      "duplicate"])  # fmt: skip
    text = None
    if how == "retype":
        header, data, what = _retyped(header, data, rng)
        return write_safetensors(header, data), what
    if how == "dtype":
        entry["dtype"] = rng.choice(["I64", "I32", "U8", "BOOL", "F16", "BF16", "F64", "F8_E4M3",
                                     "XYZ", 5, None])  # fmt: skip
    elif how == "shape":
        entry["shape"] = rng.choice([[0], [], [2**40, 2**40], [-1], list(reversed(entry["shape"])),
                                     [*entry["shape"], 1], ["a"], 7])  # fmt: skip
    elif how == "offsets":
        entry["data_offsets"] = rng.choice([[0, 2**70], [10, 4], [-4, 4], [0, len(data) + 9],
                                            [0, 0], "x", [1]])  # fmt: skip
    elif how == "drop":
        del header[name]
    elif how == "rename":
        header[rng.choice(["blocks.9.attn.qkv.weight", "x" * 400, "", "model.layers.0.zz"])] = (
            header.pop(name)
        )
    elif how == "extra":
        header["extra.weight"] = dict(entry)
    elif how == "not-object":
        text = json.dumps(rng.choice([[], "x", 1, None]))
    elif how == "nested":
        text = '{"__metadata__": {"a": ' + nested_json(rng.choice([200, 100_000])) + "}}"
    elif how == "metadata":
        header["__metadata__"] = rng.choice([{"format": 1}, [], "x", {"a": {"b": "c"}}, None])
    elif how == "length":
        body = write_safetensors(header, data)[8:]
        size = rng.choice([0, 1, 2**63, 2**64 - 1, len(body) + 10**6, 100 << 20])
        return struct.pack("<Q", size) + body, f"header length {size}"
    elif how == "values":
        values = np.frombuffer(data, dtype=np.float32).copy()
        start = entry["data_offsets"][0] // 4
        values[start] = rng.choice([float("nan"), float("inf"), 1e38, -1e30, 1e9])
        data = values.tobytes()
    elif how == "duplicate":
        raw = json.dumps(header, separators=(",", ":"))
        extra = json.dumps({name: entry}, separators=(",", ":"))[1:-1]
        text = raw[:-1] + "," + extra + "}"
    return write_safetensors(header, data, header_text=text), f"{name}: {how}"


def safetensors_case(rng: random.Random, corpus: Corpus, case_dir: Path) -> tuple[Path, str]:
    name = rng.choice(sorted(corpus.weights))
    folder = _copy_folder(corpus, name, case_dir)
    path = folder / "model.safetensors"
    header, data = corpus.weights[name]
    if rng.random() < 0.4:
        raw = path.read_bytes()
        damaged, what = damage_bytes(raw, rng, 8 + struct.unpack("<Q", raw[:8])[0])
    else:
        damaged, what = _safetensors_structured(header, data, rng)
    path.write_bytes(damaged)
    return folder, f"{name}/model.safetensors: {what}"


# ----- JSON configs -------------------------------------------------------------------------


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into a JSON value (objects only, not into long lists)."""
    out = []
    if isinstance(value, dict):
        for key, child in value.items():
            out.append((*prefix, key))
            out.extend(_paths(child, (*prefix, key)))
    return out


def _set_path(data: Any, path: tuple, value: Any, *, delete: bool = False) -> None:
    for key in path[:-1]:
        data = data[key]
    if delete:
        del data[path[-1]]
    else:
        data[path[-1]] = value


def mutate_json(data: Any, rng: random.Random) -> tuple[str, str]:
    """(text, what) of a structured mutation of a JSON object."""
    paths = _paths(data)
    how = rng.choice(["set", "set", "set", "delete", "unknown-key", "root", "nested", "dupe"])
    if how in ("set", "delete") and paths:
        path = rng.choice(paths)
        if how == "delete":
            _set_path(data, path, None, delete=True)
        else:
            _set_path(data, path, hostile_json(rng))
        return json.dumps(data), f"{how} {'.'.join(map(str, path))[:60]}"
    if how == "unknown-key":
        data["n_embdd" if rng.random() < 0.5 else "x" * 300] = 3
        return json.dumps(data), "unknown key"
    if how == "root":
        return json.dumps(rng.choice([[], "text", 42, None, [data]])), "root not an object"
    if how == "nested":
        depth = rng.choice([70, 2000, 200_000])
        key = rng.choice(paths)[0] if paths else "x"
        text = json.dumps(data)
        return text[:-1] + f', "{key}_": ' + nested_json(depth) + "}", f"nesting {depth}"
    text = json.dumps(data)
    if paths:
        key = rng.choice(paths)[0]
        text = text[:-1] + f', "{key}": ' + json.dumps(hostile_json(rng)) + "}"
    return text, "duplicated key"


def _damage_text(text: str, rng: random.Random) -> tuple[bytes, str]:
    raw = text.encode("utf-8")
    if rng.random() < 0.15:
        return rng.choice(
            [b"\xef\xbb\xbf" + raw, raw + b"\xff", b"", b"NaN", b"\x00" * 64]
        ), "odd text"
    return damage_bytes(raw, rng, 0)


_ROPE_SCALING = [
    {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
     "original_max_position_embeddings": 16},
    {"rope_type": "llama3", "factor": -1, "low_freq_factor": 4.0, "high_freq_factor": 1.0,
     "original_max_position_embeddings": 0},
    {"rope_type": "llama3", "factor": "8"},
    {"type": "linear", "factor": 2.0}, {"rope_type": "yarn"}, "llama3", [1, 2], 8, {},
]  # fmt: skip


def config_case(rng: random.Random, corpus: Corpus, case_dir: Path) -> tuple[Path, str]:
    name = rng.choice(sorted(corpus.folders))
    folder = _copy_folder(corpus, name, case_dir)
    files = ["config.json"] * 4
    if name.startswith("hf-"):
        files += ["tokenizer_config.json", "tokenizer_config.json", "generation_config.json"]
    file = folder / rng.choice(files)
    data = json.loads(file.read_text())
    roll = rng.random()
    if roll < 0.2:
        raw, what = _damage_text(file.read_text(), rng)
        file.write_bytes(raw)
        return folder, f"{name}/{file.name}: {what}"
    if roll < 0.3 and file.name == "config.json" and name == "hf-llama":
        data["rope_scaling"] = rng.choice(_ROPE_SCALING)
        what = f"rope_scaling {str(data['rope_scaling'])[:50]}"
        file.write_text(json.dumps(data))
        return folder, f"{name}/config.json: {what}"
    if roll < 0.4 and file.name == "tokenizer_config.json":
        data["chat_template"] = rng.choice([*HOSTILE_TEMPLATES, 5, [{"name": 1}], [7], None])
        file.write_text(json.dumps(data))
        return folder, f"{name}/tokenizer_config.json: chat template"
    text, what = mutate_json(data, rng)
    file.write_text(text)
    return folder, f"{name}/{file.name}: {what}"


# ----- tokenizer.json -----------------------------------------------------------------------

_BACKTRACKING = {"type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated",
                 "invert": False}  # fmt: skip


def _tokenizer_structured(spec: dict, rng: random.Random) -> tuple[str, str]:
    model = spec["model"]
    vocab = model["vocab"]
    tokens = list(vocab)
    how = rng.choice(["id", "id", "gap", "duplicate-id", "added", "added", "merges", "type",
                      "regex", "regex", "normalizer", "post", "decoder", "nest", "grow",
                      "vocab-type", "truncation", "json"])  # fmt: skip
    token = rng.choice(tokens)
    if how == "id":
        vocab[token] = rng.choice([2**31, 2**32, 2**31 - 1, 2**40, -1, 1.5, "3", None, True,
                                   len(vocab) + 5])  # fmt: skip
    elif how == "gap":
        del vocab[token]
    elif how == "duplicate-id":
        vocab[token] = vocab[rng.choice(tokens)]
    elif how == "added":
        added = spec.setdefault("added_tokens", [])
        entry = {"id": rng.choice([2**31, len(vocab) + 100, -1, "x", 0, len(vocab)]),
                 "content": rng.choice(["<x>", "", 7, "y" * 100_000]), "single_word": False,
                 "lstrip": False, "rstrip": False, "normalized": False,
                 "special": True}  # fmt: skip
        added.append(entry)
    elif how == "merges":
        merges = model["merges"]
        i = rng.randrange(len(merges))
        merges[i] = rng.choice(["abc", ["a"], 5, ["zzq", "qqz"], "a b c", None, ["a", 1]])
    elif how == "type":
        model["type"] = rng.choice(["Nope", "Unigram", "WordPiece", "WordLevel", 3, None])
    elif how == "regex":
        step = dict(_BACKTRACKING)
        step["pattern"] = {"Regex": rng.choice(["(a+)+$", "((((", "(x+x+)+y", "\\", "[" * 500])}
        spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [step, spec["pre_tokenizer"]]}
    elif how == "normalizer":
        spec["normalizer"] = rng.choice([
            {"type": "Replace", "pattern": {"Regex": "(a|aa)+$"}, "content": "b"},
            {"type": "Precompiled", "precompiled_charsmap": "AAAA!!"},
            {"type": "NFKC"}, {"type": "Strip", "strip_left": 5}, {"type": "Lowercase"},
        ])  # fmt: skip
    elif how == "post":
        spec["post_processor"] = rng.choice([
            {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
             {"Sequence": {"id": "A", "type_id": 0}}], "pair": [],
             "special_tokens": {"<s>": {"id": "<s>", "ids": [2**31], "tokens": ["<s>"]}}},
            {"type": "RobertaProcessing", "sep": ["</s>", 2**32 - 1], "cls": ["<s>", 0],
             "trim_offsets": True, "add_prefix_space": False},
            {"type": "BertProcessing", "sep": ["a", -1], "cls": ["b", 1]},
        ])  # fmt: skip
    elif how == "decoder":
        spec["decoder"] = rng.choice([{"type": "Strip", "content": " ", "start": 2**40, "stop": 0},
                                      {"type": "Nope"}, None, {"type": "Fuse"}])  # fmt: skip
    elif how == "nest":
        text = json.dumps(spec)
        depth = rng.choice([100, 5000, 300_000])
        return text[:-1] + ', "normalizer": ' + nested_json(depth) + "}", f"nesting {depth}"
    elif how == "grow":
        start = len(vocab)
        for j in range(rng.choice([10, 2000, 70_000])):
            vocab[f"grown{j}"] = start + j
    elif how == "vocab-type":
        model["vocab"] = rng.choice([[["a", 1.0]], list(vocab), "x", None, [["a", float("nan")]]])
    elif how == "truncation":
        spec["truncation"] = {"max_length": rng.choice([-1, 2**70, 0]), "stride": 0,
                              "strategy": "LongestFirst", "direction": "Right"}  # fmt: skip
    else:
        return json.dumps(rng.choice([[], None, {"model": []}, {"model": {}}])), "not a tokenizer"
    return json.dumps(spec), f"{how} ({str(token)[:20]!r})"


def tokenizer_case(rng: random.Random, corpus: Corpus, case_dir: Path) -> tuple[Path, str]:
    name = rng.choice(["native-gpt2", "native-llama", "hf-llama", "hf-gpt2"])
    folder = _copy_folder(corpus, name, case_dir)
    path = folder / "tokenizer.json"
    text = path.read_text()
    if rng.random() < 0.3:
        raw, what = _damage_text(text, rng)
        path.write_bytes(raw)
    else:
        text, what = _tokenizer_structured(json.loads(text), rng)
        path.write_text(text)
    return folder, f"{name}/tokenizer.json: {what}"


# ----- special files ------------------------------------------------------------------------


def _special(path: Path, how: str) -> None:
    """Make `path` (absent) into a special file of some kind."""
    if how == "fifo":
        os.mkfifo(path)
    elif how == "dev-null":
        path.symlink_to("/dev/null")
    elif how == "dev-zero":
        path.symlink_to("/dev/zero")
    elif how == "folder":
        path.mkdir()
    elif how == "loop":
        path.symlink_to(path.name)
    elif how == "dangling":
        path.symlink_to(path.parent / "nowhere")
    elif how == "socket":
        # A socket's path may have at most ~107 bytes: bind by a name relative to its folder.
        s, cwd = socket.socket(socket.AF_UNIX), os.getcwd()
        try:
            os.chdir(path.parent)
            s.bind(path.name)
        finally:
            os.chdir(cwd)
            s.close()
    elif how == "sparse":
        with open(path, "wb") as f:
            f.truncate(1 << 36)  # 64 GB of nothing
    elif how == "empty":
        path.write_bytes(b"")


SPECIALS = ["fifo", "fifo", "dev-null", "dev-zero", "folder", "loop", "dangling", "socket",
            "sparse", "empty"]  # fmt: skip


def special_case(rng: random.Random, corpus: Corpus, case_dir: Path) -> tuple[Path, str]:
    how = rng.choice(SPECIALS)
    where = rng.choice(["model", "model", "inside", "inside", "inside", "name", "name"])
    if where == "model":
        path = case_dir / rng.choice(["model.gguf", "model", "model.safetensors"])
        _special(path, how)
        return path, f"the model path is {how}"
    if where == "name":
        choice = rng.choice(["long-component", "long-path", "nul", "missing"])
        if choice == "long-component":
            return case_dir / ("m" * 300 + ".gguf"), "a name of 300 characters"
        if choice == "long-path":
            return case_dir / "/".join(["d" * 200] * 25), "a path of 5000 characters"
        if choice == "nul":
            return Path(str(case_dir / "model") + "\x00.gguf"), "a NUL byte in the name"
        return case_dir / "no-such-model", "nothing there"
    name = rng.choice(sorted(corpus.folders))
    folder = _copy_folder(corpus, name, case_dir)
    files = ["config.json", "model.safetensors", "tokenizer.json"]
    if name.startswith("hf-"):
        files += ["tokenizer_config.json", "generation_config.json", "chat_template.jinja"]
    if rng.random() < 0.15:  # a folder with one GGUF in it
        shutil.rmtree(folder)
        folder.mkdir()
        _special(folder / "model.gguf", how)
        return folder, f"{name}: a folder whose only .gguf is {how}"
    file = folder / rng.choice(files)
    if file.exists() or file.is_symlink():
        file.unlink()
    _special(file, how)
    return folder, f"{name}/{file.name} is {how}"


# ----- named cases: every finding of issue 17's campaign, always in the run ------------------


def _gguf_named(change: Callable[[GGUFSpec], object], base: str = "gguf-llama-f32") -> Callable:
    def make(corpus: Corpus, case_dir: Path) -> Path:
        spec = corpus.ggufs[base].copy()
        change(spec)
        path = case_dir / f"{base}.gguf"
        path.write_bytes(write_gguf(spec))
        return path

    return make


def _set_tensor(spec: GGUFSpec, name: str, **fields: Any) -> None:
    i = next(i for i, t in enumerate(spec.tensors) if t[0] == name)
    entry = dict(zip(("name", "dims", "qtype", "data"), spec.tensors[i], strict=True))
    entry.update(fields)
    spec.tensors[i] = (entry["name"], entry["dims"], entry["qtype"], entry["data"])


def _poisoned(value: float) -> Callable[[GGUFSpec], None]:
    def change(spec: GGUFSpec) -> None:
        name, _, _, data = next(t for t in spec.tensors if t[0] == "blk.0.attn_q.weight")
        values = np.frombuffer(data, dtype=np.float32).copy()
        values[:3] = value
        _set_tensor(spec, name, data=values.tobytes())

    return change


def _nested_array(depth: int) -> Raw:
    """An array of one array of one array ... `depth` deep, ending in one u32."""
    return Raw(struct.pack("<IQ", ARRAY, 1) * depth + struct.pack("<IQI", U32, 1, 1))


def _folder_named(name: str, change: Callable[[Path], object]) -> Callable:
    def make(corpus: Corpus, case_dir: Path) -> Path:
        folder = _copy_folder(corpus, name, case_dir)
        change(folder)
        return folder

    return make


def _edit_json(file: str, change: Callable[[Any], Any]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = json.loads((folder / file).read_text())
        result = change(data)
        (folder / file).write_text(result if isinstance(result, str) else json.dumps(data))

    return edit


def _weights(change: Callable[[dict, bytes], tuple[dict, bytes] | bytes]) -> Callable:
    def edit(folder: Path, corpus: Corpus, name: str) -> None:
        header, data = corpus.weights[name]
        result = change(json.loads(json.dumps(header)), data)
        raw = result if isinstance(result, bytes) else write_safetensors(*result)
        (folder / "model.safetensors").write_bytes(raw)

    return edit


def _safetensors_named(name: str, change: Callable) -> Callable:
    def make(corpus: Corpus, case_dir: Path) -> Path:
        folder = _copy_folder(corpus, name, case_dir)
        _weights(change)(folder, corpus, name)
        return folder

    return make


def _special_named(how: str, file: str | None = None, name: str = "native-gpt2") -> Callable:
    def make(corpus: Corpus, case_dir: Path) -> Path:
        if file is None:
            path = case_dir / "model.gguf"
            _special(path, how)
            return path
        folder = _copy_folder(corpus, name, case_dir)
        (folder / file).unlink()
        _special(folder / file, how)
        return folder

    return make


def _integer_embedding(header: dict, data: bytes) -> tuple[dict, bytes]:
    """The embedding stored as int64 with its shape and sizes right: the campaign's case."""
    out, new = {"__metadata__": header["__metadata__"]}, bytearray()
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        raw = data[start:end]
        entry = dict(entry)
        if key in ("embed.weight", "model.embed_tokens.weight", "wte.weight"):
            raw = (np.frombuffer(raw, dtype=np.float32) * 100).astype(np.int64).tobytes()
            entry["dtype"] = "I64"
        entry["data_offsets"] = [len(new), len(new) + len(raw)]
        new += raw
        out[key] = entry
    return out, bytes(new)


def _tokenizer_named(change: Callable[[dict], Any], name: str = "native-llama") -> Callable:
    return _folder_named(name, _edit_json("tokenizer.json", change))


NAMED: dict[str, tuple[str, Callable[[Corpus, Path], Path]]] = {
    # GGUF
    "gguf: a tensor dimension of 0": ("gguf", _gguf_named(
        lambda s: _set_tensor(s, "token_embd.weight", dims=[0, 320]))),
    "gguf: head_count 0": ("gguf", _gguf_named(
        lambda s: s.set("llama.attention.head_count", U32, 0))),
    "gguf: block_count 1e9": ("gguf", _gguf_named(
        lambda s: s.set("llama.block_count", U32, 10**9))),
    "gguf: block_count an infinite float": ("gguf", _gguf_named(
        lambda s: s.set("llama.block_count", F32, float("inf")))),
    "gguf: rope freq_base 3e38": ("gguf", _gguf_named(
        lambda s: s.set("llama.rope.freq_base", F32, 3e38))),
    "gguf: context_length 2**32-1": ("gguf", _gguf_named(
        lambda s: s.set("llama.context_length", U32, 2**32 - 1))),
    "gguf: arrays nested 5000 deep": ("gguf", _gguf_named(
        lambda s: s.set("general.tags", ARRAY, _nested_array(5000)))),
    "gguf: token types of NaN floats": ("gguf", _gguf_named(
        lambda s: s.set("tokenizer.ggml.token_type", ARRAY, (F32, [float("nan")] * 320)))),
    "gguf: a BOS id that is a float": ("gguf", _gguf_named(
        lambda s: s.set("tokenizer.ggml.bos_token_id", F32, 1.5))),
    "gguf: a merge of unknown tokens": ("gguf", _gguf_named(
        lambda s: s.set("tokenizer.ggml.merges", ARRAY, (STRING, ["zzqq yyxx"])))),
    "gguf: sentencepiece scores on a BPE vocabulary": ("gguf", _gguf_named(
        lambda s: (s.set("tokenizer.ggml.model", STRING, "llama"),
                   s.set("tokenizer.ggml.scores", ARRAY, (F32, [float("inf")] * 320))))),
    "gguf: NaN weights": ("gguf", _gguf_named(_poisoned(float("nan")))),
    "gguf: weights of 3e38": ("gguf", _gguf_named(_poisoned(3e38))),
    'gguf: chat template "x" * 3e9': ("gguf", _gguf_named(
        lambda s: s.set("tokenizer.chat_template", STRING, '{{ "x" * 3000000000 }}'))),
    "gguf: chat template loops without end": ("gguf", _gguf_named(
        lambda s: s.set("tokenizer.chat_template", STRING, HOSTILE_TEMPLATES[2]))),
    "gguf: chat template doubling a string": ("gguf", _gguf_named(
        lambda s: s.set("tokenizer.chat_template", STRING, HOSTILE_TEMPLATES[3]))),
    "gguf: tensor count 2**63": ("gguf", _gguf_named(
        lambda s: setattr(s, "n_tensors_override", 2**63))),
    # safetensors
    "safetensors: integer weights with the right shape": ("safetensors", _safetensors_named(
        "native-llama", _integer_embedding)),
    "safetensors: integer weights in a Hugging Face folder": ("safetensors", _safetensors_named(
        "hf-llama", _integer_embedding)),
    "safetensors: a header nested 100000 deep": ("safetensors", _safetensors_named(
        "native-gpt2", lambda h, d: write_safetensors(h, d, header_text='{"__metadata__": {"a": '
                                                     + nested_json(100_000) + "}}"))),
    "safetensors: a header length of 2**63": ("safetensors", _safetensors_named(
        "native-gpt2", lambda h, d: struct.pack("<Q", 2**63) + write_safetensors(h, d)[8:])),
    # configs
    "config: rope_scaling a string": ("config", _folder_named("hf-llama", _edit_json(
        "config.json", lambda c: c.update(rope_scaling="llama3")))),
    "config: rope_scaling a list": ("config", _folder_named("hf-llama", _edit_json(
        "config.json", lambda c: c.update(rope_scaling=[8.0, 1.0])))),
    "config: n_head 0": ("config", _folder_named("native-llama", _edit_json(
        "config.json", lambda c: c["model"].update(n_head=0)))),
    "config: n_layer 1e9": ("config", _folder_named("native-gpt2", _edit_json(
        "config.json", lambda c: c["model"].update(n_layer=10**9)))),
    "config: num_attention_heads a string": ("config", _folder_named("hf-gpt2", _edit_json(
        "config.json", lambda c: c.update(n_head="4")))),
    "config: an unknown model key": ("config", _folder_named("native-gpt2", _edit_json(
        "config.json", lambda c: c["model"].update(n_embd=64)))),
    "config: chat template in tokenizer_config.json": ("config", _folder_named(
        "hf-llama", _edit_json("tokenizer_config.json",
                               lambda c: c.update(chat_template=HOSTILE_TEMPLATES[0])))),
    # tokenizer.json
    "tokenizer: a token id of 2**31": ("tokenizer", _tokenizer_named(
        lambda t: t["model"]["vocab"].update(a=2**31))),
    "tokenizer: an added token id of 2**31": ("tokenizer", _tokenizer_named(
        lambda t: t["added_tokens"].append({"id": 2**31, "content": "<x>", "special": True}))),
    "tokenizer: ids with a gap": ("tokenizer", _tokenizer_named(
        lambda t: t["model"]["vocab"].pop("a"))),
    "tokenizer: nested 100000 deep": ("tokenizer", _tokenizer_named(
        lambda t: json.dumps(t)[:-1] + ', "normalizer": ' + nested_json(100_000) + "}")),
    "tokenizer: a regex that backtracks without end": ("tokenizer", _tokenizer_named(
        lambda t: t.update(pre_tokenizer=_BACKTRACKING))),
    "tokenizer: a post-processor id of 2**32-1": ("tokenizer", _tokenizer_named(
        lambda t: t.update(post_processor={"type": "RobertaProcessing", "sep": ["a", 2**32 - 1],
                                           "cls": ["b", 0]}))),
    # special files
    "special: the model is a FIFO": ("special", _special_named("fifo")),
    "special: config.json is a FIFO": ("special", _special_named("fifo", "config.json")),
    "special: tokenizer.json is a FIFO": ("special", _special_named("fifo", "tokenizer.json")),
    "special: model.safetensors is a FIFO": ("special", _special_named(
        "fifo", "model.safetensors", "hf-llama")),
    "special: the model is /dev/null": ("special", _special_named("dev-null")),
    "special: tokenizer.json is /dev/zero": ("special", _special_named(
        "dev-zero", "tokenizer.json")),
    "special: config.json is a folder": ("special", _special_named("folder", "config.json")),
    "special: chat_template.jinja is a FIFO": ("special", _folder_named("hf-llama", lambda f: (
        _edit_json("tokenizer_config.json", lambda c: c.__delitem__("chat_template"))(f),
        _special(f / "chat_template.jinja", "fifo")))),
    "special: a name of 300 characters": ("special", lambda c, d: d / ("m" * 300 + ".gguf")),
    "special: a path of 5000 characters": ("special", lambda c, d: d / "/".join(["d" * 200] * 25)),
    "special: a link to itself": ("special", _special_named("loop")),
    "special: a socket": ("special", _special_named("socket", "tokenizer.json")),
}  # fmt: skip


MAKERS: dict[str, Callable[[random.Random, Corpus, Path], tuple[Path, str]]] = {
    "gguf": gguf_case,
    "safetensors": safetensors_case,
    "config": config_case,
    "tokenizer": tokenizer_case,
    "special": special_case,
}


def make_case(kind: str, seed: str, corpus: Corpus, case_dir: Path) -> tuple[Path, str]:
    """Write one mutated model under `case_dir`; the path to load and what was done.

    A seed "named:<name>" makes the named case of NAMED instead of a random one.
    """
    if seed.startswith("named:"):
        name = seed.removeprefix("named:")
        return NAMED[name][1](corpus, case_dir), name
    rng = random.Random(seed)
    return MAKERS[kind](rng, corpus, case_dir)
