"""The findings of issue 17's campaign, one by one: each hostile file gets a clear error that
names the file and what was expected, at bounded cost, and never a hang, a crash or another
exception type. (tests/fuzz runs hundreds of random ones; these are the named cases.)"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tokenscope.lm import (
    LanguageModel,
    ModelFormatError,
    ModelNotFoundError,
    Tokenizer,
    Transformer,
    load_model,
)
from tokenscope.lm.config import ModelConfig, preset
from tokenscope.lm.formats import chat_template
from tokenscope.lm.formats.chat_template import render_chat
from tokenscope.lm.formats.gguf_tokenizer import tokenizer_from_gguf
from tokenscope.lm.formats.summary import summarize

from .conftest import write_gguf


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, hf_models, bpe_tokenizer):
    return write_gguf(
        tmp_path_factory.mktemp("gguf") / "tiny.gguf", hf_models["llama"], bpe_tokenizer
    )


def _patch(data: bytes, key: bytes, fmt: str, value) -> bytes:
    """Replace the value of a scalar GGUF metadata entry, in place in the bytes."""
    at = data.index(struct.pack("<Q", len(key)) + key) + 8 + len(key)
    kind = struct.unpack_from("<I", data, at)[0]
    size = struct.calcsize("<" + fmt)
    assert kind in (4, 5, 6, 10), kind
    return data[: at + 4] + struct.pack("<" + fmt, value) + data[at + 4 + size :]


def _bounded(call, *, max_bytes: int = 50_000_000, max_seconds: float = 10.0):
    """Run `call`, expecting ModelFormatError; returns it after checking time and memory."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ModelFormatError) as caught:
            call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < max_bytes, f"{peak:,} bytes allocated"
    assert time.monotonic() - started < max_seconds
    return caught.value


# ----- special files -------------------------------------------------------------------------


POSIX_FILES = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev are POSIX")


@POSIX_FILES
@pytest.mark.parametrize("where", ["model.gguf", "config.json", "tokenizer.json",
                                   "model.safetensors"])  # fmt: skip
def test_a_fifo_is_refused_without_opening_it(tmp_path, checkpoint, where):
    if where == "model.gguf":
        target = tmp_path / "model.gguf"
        os.mkfifo(target)
        path = target
    else:
        (checkpoint / where).unlink()
        os.mkfifo(checkpoint / where)
        path = checkpoint
    with pytest.raises(ModelFormatError, match=r"named pipe \(FIFO\)"):
        load_model(path)  # opening a FIFO for reading would block here forever


@POSIX_FILES
def test_devices_folders_and_impossible_names_are_named(tmp_path, checkpoint):
    (tmp_path / "null.gguf").symlink_to("/dev/null")
    with pytest.raises(ModelFormatError, match=r"null\.gguf is a character device"):
        load_model(tmp_path / "null.gguf")
    (checkpoint / "tokenizer.json").unlink()
    (checkpoint / "tokenizer.json").symlink_to("/dev/zero")
    with pytest.raises(ModelFormatError, match=r"tokenizer\.json is a character device"):
        load_model(checkpoint)
    (checkpoint / "tokenizer.json").unlink()
    (checkpoint / "tokenizer.json").mkdir()
    with pytest.raises(ModelFormatError, match=r"tokenizer\.json is a folder"):
        load_model(checkpoint)
    with pytest.raises(ModelNotFoundError, match=r"longer than this system allows"):
        load_model(tmp_path / ("m" * 300 + ".gguf"))
    with pytest.raises(ModelNotFoundError, match=r"NUL byte"):
        load_model(str(tmp_path / "model") + "\0.gguf")
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(ModelNotFoundError, match=r"loop of symbolic links"):
        load_model(tmp_path / "loop")
    assert summarize(tmp_path / "loop").problem  # the model list says why, never raises


def test_an_oversized_file_is_refused_by_its_size(tmp_path, checkpoint):
    with open(checkpoint / "config.json", "r+b") as f:
        f.truncate(1 << 36)  # sparse: 64 GB of nothing
    error = _bounded(lambda: load_model(checkpoint))
    assert "config.json has 68,719,476,736 bytes" in str(error)


# ----- tokenizer.json ------------------------------------------------------------------------


def _tokenizer_json(tok: Tokenizer) -> dict:
    return json.loads(tok.to_str())


def test_a_token_id_of_2_31_is_refused_before_the_rust_library_sees_it(tmp_path, bpe_tokenizer):
    """The library aborts the whole interpreter on this one: checked in a child process."""
    spec = _tokenizer_json(bpe_tokenizer)
    spec["model"]["vocab"]["a"] = 2**31
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    code = (
        "import sys\nfrom tokenscope.lm import Tokenizer, ModelFormatError\n"
        "try:\n    Tokenizer.from_file(sys.argv[1])\nexcept ModelFormatError as e:\n"
        "    print('refused:', e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused:" in done.stdout and "2147483648" in done.stdout
    assert "tokenizer.json" in done.stdout


ROBERTA = {"type": "RobertaProcessing", "sep": ["a", 2**32], "cls": ["b", 0]}
BACKTRACKING = {"type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated",
                "invert": False}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["model"]["vocab"].pop("a"), r"without gaps, but id \d+ has no token"),
        (lambda s: s["model"]["vocab"].update(a=-1), r"the id -1"),
        (lambda s: s["model"]["vocab"].update(a="3"), r"the id 3; ids are whole numbers"),
        (lambda s: s["added_tokens"].append({"id": 2**40, "content": "x"}), r"1099511627776"),
        (lambda s: s["model"].update(type="Nope"), r"model type 'Nope'"),
        (lambda s: s["model"]["merges"].__setitem__(0, "abc"), r"merge #0 is not a pair"),
        (lambda s: s.update(post_processor=ROBERTA), r"post-processor inserts the id 4294967296"),
        (lambda s: s.update(pre_tokenizer=BACKTRACKING), r"cannot tokenize text"),
    ],
)
def test_broken_vocabularies_and_rules_are_refused(tmp_path, bpe_tokenizer, change, message):
    spec = _tokenizer_json(bpe_tokenizer)
    change(spec)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(ModelFormatError, match=message) as caught:
        Tokenizer.from_file(path)
    assert str(path) in str(caught.value)


def test_deeply_nested_json_is_refused(tmp_path, bpe_tokenizer):
    text = bpe_tokenizer.to_str()
    for depth in (100, 100_000):
        path = tmp_path / f"tokenizer-{depth}.json"
        path.write_text(text[:-1] + ', "normalizer": ' + "[" * depth + "]" * depth + "}")
        with pytest.raises(ModelFormatError, match=r"nests .*deep"):
            Tokenizer.from_file(path)


@pytest.mark.parametrize("name", ["config.json", "generation_config.json"])
def test_a_hub_config_nested_100000_deep_is_the_files_clear_error(
    tmp_path, hf_models, bpe_tokenizer, name
):
    """A Hugging Face folder read from disk: json.loads raises RecursionError on such a file;
    loading says which file and what is wrong, in one line."""
    folder = tmp_path / "hf"
    hf_models["llama"].save_pretrained(folder)
    bpe_tokenizer.save(folder / "tokenizer.json")
    (folder / name).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelFormatError) as caught:
        load_model(folder)
    message = str(caught.value)
    assert str(folder / name) in message and "too deeply" in message and "\n" not in message


def test_ids_a_model_has_but_its_tokenizer_lacks_read_as_empty(tmp_path, bpe_tokenizer):
    """Vocabularies padded to a round size: the padding rows can be predicted and shown."""
    config = preset("tiny", vocab_size=bpe_tokenizer.vocab_size + 12)
    model = LanguageModel(Transformer(config).init_weights(seed=0), bpe_tokenizer)
    loaded = load_model(model.save(tmp_path / "padded"))
    padding = bpe_tokenizer.vocab_size + 5
    assert loaded.tokenizer.display(padding) == "∅" and loaded.tokenizer.token_bytes(padding) == b""
    assert loaded.predict_next_token_probabilities("The capital").top(400)  # every id displays
    with pytest.raises(IndexError):
        loaded.tokenizer.display(bpe_tokenizer.vocab_size + 12)


# ----- configs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n_head", 0, r"n_head must be a whole number in 1\.\.1,024 \(got 0"),
        ("n_layer", 10**9, r"n_layer must be a whole number in 1\.\.1,024"),
        ("vocab_size", 3.0, r"vocab_size must be a whole number .*\(got 3\.0 \(float\)\)"),
        ("d_model", "64", r"d_model must be a whole number"),
        ("norm_eps", float("nan"), r"norm_eps must be a number in \(0, 1\]"),
        ("rope_base", float("inf"), r"rope_base must be a number"),
        ("qkv_bias", "yes", r"qkv_bias must be true or false"),
        ("position", ["rope"], r"position must be 'learned' or 'rope'"),
        ("rope_scaling", [8.0], r"rope_scaling must be null or an object with exactly factor"),
        ("rope_scaling", {"factor": 8.0}, r"rope_scaling must be null or an object"),
        ("dropout", 1.0, r"dropout must be in \[0, 1\)"),
    ],
)
def test_every_config_field_is_checked(field, value, message):
    with pytest.raises(ValueError, match=message):
        preset("tiny", **{field: value})


def test_unknown_config_keys_are_named_with_the_known_ones():
    data = {**preset("tiny").to_dict(), "n_embd": 3}
    with pytest.raises(ValueError, match=r"unknown model config keys: n_embd \(known: .*d_model"):
        ModelConfig.from_dict(data)
    with pytest.raises(ValueError, match=r"must be a JSON object"):
        ModelConfig.from_dict([1, 2])


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"model": [1]}, r'no valid "model" section: a model config must be a JSON object'),
        ({"tokenizer": "x"}, r'"tokenizer" must be an object'),
        ({"tokenizer": {"bos_id": "1"}}, r'"tokenizer.bos_id" must be a token id'),
        ({"tokenizer": {"eos_id": 10**6}}, r"eos_id=1000000 is not a token"),
        ({"add_bos": "yes"}, r'"add_bos" must be true or false'),
        ({"format_version": True}, r"format_version True"),
    ],
)
def test_checkpoint_config_values_of_the_wrong_type(checkpoint, section, message):
    path = checkpoint / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **section}))
    with pytest.raises(ModelFormatError, match=message) as caught:
        load_model(checkpoint)
    assert str(checkpoint) in str(caught.value)


def _hf_llama(folder, hf_models, bpe_tokenizer):
    hf_models["llama"].save_pretrained(folder)
    bpe_tokenizer.save(folder / "tokenizer.json")
    return folder


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rope_scaling": "llama3"}, r"rope_scaling = 'llama3' is not an object"),
        ({"rope_scaling": {"rope_type": "llama3", "factor": "8"}}, r"factor = '8' is not a num"),
        ({"rope_scaling": {"rope_type": "llama3", "factor": 8}}, r"lacks 'low_freq_factor'"),
        ({"num_attention_heads": 0}, r"num_attention_heads = 0 is not a whole number"),
        ({"hidden_size": "64"}, r"hidden_size = '64' is not a whole number"),
        ({"num_hidden_layers": 10**9}, r"n_layer must be a whole number in 1\.\.1,024"),
        ({"tie_word_embeddings": "no"}, r"tie_word_embeddings = 'no' is not true or false"),
    ],
)
def test_hugging_face_config_values_of_the_wrong_type(tmp_path, hf_models, bpe_tokenizer, change,
                                                      message):  # fmt: skip
    folder = _hf_llama(tmp_path / "llama", hf_models, bpe_tokenizer)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    error = _bounded(lambda: load_model(folder))
    assert "config.json" in str(error)
    assert __import__("re").search(message, str(error)), str(error)


# ----- weights -------------------------------------------------------------------------------


def _rewrite_weights(checkpoint, change):
    path = checkpoint / "model.safetensors"
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    change(state)
    save_file(state, str(path))


def test_integer_weights_of_the_right_shape_are_refused(checkpoint):
    _rewrite_weights(checkpoint, lambda s: s.update({"embed.weight": s["embed.weight"].long()}))
    with pytest.raises(ModelFormatError, match=r"embed\.weight \(I64\); weights must be floating"):
        load_model(checkpoint)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 3e38])
def test_weights_that_are_not_finite_or_absurd_are_refused(checkpoint, value):
    def poison(state):
        state["blocks.0.attn.qkv.weight"][0, 0] = value

    _rewrite_weights(checkpoint, poison)
    with pytest.raises(ModelFormatError, match=r"blocks\.0\.attn\.qkv\.weight holds .*damaged"):
        load_model(checkpoint)


@pytest.mark.slow
def test_a_config_far_larger_than_its_weights_costs_nothing(checkpoint):
    path = checkpoint / "config.json"
    meta = json.loads(path.read_text())
    meta["model"].update(n_layer=1000, d_model=4096, n_head=32, vocab_size=10**6)
    path.write_text(json.dumps(meta))
    error = _bounded(lambda: load_model(checkpoint), max_bytes=400_000_000)
    assert "does not match its config" in str(error)


# ----- GGUF ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "fmt", "value", "message"),
    [
        (b"llama.block_count", "I", 10**9, r"block_count = 1,000,000,000 is out of range"),
        (b"llama.attention.head_count", "I", 0, r"head_count = 0 is out of range"),
        (b"llama.embedding_length", "I", 0, r"embedding_length = 0 is out of range"),
        (b"llama.rope.freq_base", "f", float("inf"), r"freq_base = inf is out of range"),
        (b"llama.rope.freq_base", "f", float("nan"), r"freq_base = nan is out of range"),
        (b"llama.context_length", "I", 2**32 - 1, r"context_length = 4,294,967,295 is out"),
        (b"llama.context_length", "I", 1 << 22, r"rotary position tables"),
    ],
)
def test_absurd_gguf_header_values_cost_nothing(tmp_path, tiny_gguf, key, fmt, value, message):
    path = tmp_path / "bad.gguf"
    path.write_bytes(_patch(tiny_gguf.read_bytes(), key, fmt, value))
    error = _bounded(lambda: load_model(path), max_bytes=100_000_000)
    assert str(path) in str(error)
    assert __import__("re").search(message, str(error)), str(error)


def test_gguf_arrays_nested_without_end_are_refused(tmp_path):
    nested = struct.pack("<IQ", 9, 1) * 5000 + struct.pack("<IQ", 4, 0)
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k"
    path = tmp_path / "nested.gguf"
    path.write_bytes(data + struct.pack("<I", 9) + nested)
    with pytest.raises(ModelFormatError, match=r"nests arrays more than 4 deep"):
        load_model(path)


def test_a_gguf_vocabulary_with_a_repeated_string_loads():
    """llama.cpp keeps such files usable; the second id of the string reads as empty."""
    meta = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.tokens": ["a", "b", "ab", "a"],
        "tokenizer.ggml.merges": ["a b"],
    }
    tok, _ = tokenizer_from_gguf(meta, source="dup.gguf")
    assert tok.encode("ab a") == [2, 0] or tok.encode("aba") == [2, 0]
    assert tok.display(3) == "∅" and tok.token_bytes(3) == b""
    with pytest.raises(ModelFormatError, match=r"dup\.gguf: the GGUF merge 'a c' names a token"):
        tokenizer_from_gguf({**meta, "tokenizer.ggml.merges": ["a c"]}, source="dup.gguf")
    with pytest.raises(ModelFormatError, match=r"dup\.gguf: .*token_id = 2\.0 is not a token id"):
        tokenizer_from_gguf({**meta, "tokenizer.ggml.eos_token_id": 2.0}, source="dup.gguf")


# ----- chat templates ------------------------------------------------------------------------

MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.mark.parametrize(
    "template",
    [
        '{{ "x" * 3000000000 }}',
        '{{ "x".center(3000000000) }}',
        '{{ "{:>999999999}".format(1) }}',
        '{{ "%999999999d" % 1 }}',
        '{% set s = "x" * 100000 %}{{ s.replace("", s) }}',
        "{{ (range(100000) | list) | join('x' * 100000) }}",
        '{% set ns = namespace(s="ab") %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}'
        "{% endfor %}{{ ns.s }}",
        "{{ 2 ** 1000000000 }}",
        '{% for i in range(100000) %}{{ "y" * 100000 }}{% endfor %}',
        "{{ lipsum(1000000000) }}",
    ],
)
def test_chat_templates_cannot_build_huge_things(template):
    error = _bounded(lambda: render_chat(template, MESSAGES), max_bytes=60_000_000)
    assert "chat template" in str(error)


@pytest.mark.parametrize(
    "template",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        '{% set s = "x" * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}',
        "{% macro f(n) %}{% if n > 1 %}{{ f(n - 1) }}{{ f(n - 2) }}{% endif %}{% endmacro %}"
        "{{ f(60) }}",
    ],
)
def test_chat_templates_have_a_deadline(monkeypatch, template):
    monkeypatch.setattr(chat_template, "MAX_RENDER_SECONDS", 0.3)
    started = time.monotonic()
    with pytest.raises(ModelFormatError, match=r"ran longer than 0\.3 s"):
        render_chat(template, MESSAGES)
    assert time.monotonic() - started < 5


def test_chat_templates_that_recurse_or_reach_python_fail_cleanly():
    with pytest.raises(ModelFormatError, match=r"calls itself without end"):
        render_chat("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}", MESSAGES)
    with pytest.raises(ModelFormatError, match=r"unsafe"):
        render_chat('{{ "".__class__.__mro__ }}', MESSAGES)
    with pytest.raises(ModelFormatError, match=r"division"):
        render_chat("{{ 1 // 0 }}", MESSAGES)
    # A real template is unaffected, and a long conversation may give a long prompt.
    long = [{"role": "user", "content": "word " * 400_000}]
    template = "{% for m in messages %}<{{ m.role }}>{{ m.content | indent(2) }}{% endfor %}"
    assert len(render_chat(template, long)) > 2_000_000


def test_the_previous_trace_function_is_kept():
    seen = []

    def tracer(frame, event, arg):
        seen.append(event)

    sys.settrace(tracer)
    try:
        render_chat("{{ 1 }}", MESSAGES)
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(None)


def test_weights_probe_runs_on_the_loaded_dtype(checkpoint):
    model = load_model(checkpoint, dtype="bfloat16")
    assert model.transformer.embed.weight.dtype == torch.bfloat16
    assert np.isfinite(model.predict_next_token_probabilities("The").raw.float().numpy()).all()
