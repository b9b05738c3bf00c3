"""The GGUF container reader: the same content as gguf's own reader, and clear refusals of
truncated, corrupt or hostile files at bounded cost (crafted here byte by byte)."""

import struct
import tracemalloc

import numpy as np
import pytest
from gguf import GGUFReader

from tokenscope.lm import ModelFormatError, load_model
from tokenscope.lm.formats.gguf_file import GGUFFile

from .conftest import write_gguf


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, hf_models, bpe_tokenizer):
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return write_gguf(path, hf_models["llama"], bpe_tokenizer, chat_template="{{ x }}")


def test_reads_what_gguf_reads(tiny_gguf):
    reference = GGUFReader(tiny_gguf)
    with GGUFFile(tiny_gguf) as gf:
        assert gf.version == 3
        for key, field in reference.fields.items():
            if key.startswith("GGUF."):
                continue
            ours = gf.metadata[key]
            theirs = field.contents()
            if isinstance(ours, np.ndarray):
                assert ours.tolist() == list(theirs), key
            else:
                assert ours == pytest.approx(theirs) if isinstance(ours, float) else ours == theirs
        assert set(gf.tensors) == {t.name for t in reference.tensors}
        for t in reference.tensors:
            info = gf.tensors[t.name]
            assert info.shape == tuple(int(d) for d in reversed(t.shape))
            assert info.qtype == t.tensor_type and info.n_bytes == t.n_bytes
            assert gf.tensor_bytes(info).tobytes() == np.asarray(t.data).tobytes()


# ----- crafted files ------------------------------------------------------------------------


def _string(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def _header(n_tensors: int, n_kv: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def _kv_string(key: bytes, value: bytes) -> bytes:
    return _string(key) + struct.pack("<I", 8) + _string(value)


def _tensor(name: bytes, dims: list[int], qtype: int = 0, offset: int = 0) -> bytes:
    return (
        _string(name)
        + struct.pack("<I", len(dims))
        + b"".join(struct.pack("<Q", d) for d in dims)
        + struct.pack("<IQ", qtype, offset)
    )


def _file(tmp_path, data: bytes, name="bad.gguf"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


CRAFTED = {
    "empty": (b"", r"only 0 bytes"),
    "wrong magic": (b"GGML" + bytes(40), r"not a GGUF file: it starts with b'GGML'"),
    "safetensors renamed": (struct.pack("<Q", 2) + b"{}" + bytes(30), r"not a GGUF file"),
    "version 1": (_header(0, 0, version=1) + bytes(8), r"GGUF version 1; Tokenscope reads"),
    "big-endian": (b"GGUF" + struct.pack(">IQQ", 3, 0, 0), r"big-endian"),
    "absurd tensor count": (_header(2**60, 0), r"declares 1,152,921,504,606,846,976 tensors"),
    "absurd metadata count": (_header(0, 2**40), r"not a real model"),
    "key longer than the file": (
        _header(0, 1) + struct.pack("<Q", 2**50) + b"abc",
        r"truncated or corrupt: metadata key #0 needs",
    ),
    "array of 2**50 strings": (
        _header(0, 1) + _string(b"tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2**50),
        r"truncated or corrupt: metadata 'tokenizer.ggml.tokens' \(1,125,899,906,842,624 strings\)",
    ),
    "array of 2**61 floats": (
        _header(0, 1) + _string(b"scores") + struct.pack("<IIQ", 9, 6, 2**61),
        r"truncated or corrupt",
    ),
    "unknown value type": (
        _header(0, 1) + _string(b"k") + struct.pack("<I", 77),
        r"'k' has unknown value type 77",
    ),
    "tensor of absurd size": (
        _header(1, 0) + _tensor(b"token_embd.weight", [2**20, 2**20]),
        r"truncated or corrupt: tensor 'token_embd.weight' \(F32, shape \(1048576, 1048576\)\)",
    ),
    "tensor of nine dimensions": (
        _header(1, 0) + _tensor(b"x", [1] * 9),
        r"tensor 'x' has 9 dimensions",
    ),
    "unknown tensor type": (
        _header(1, 0) + _tensor(b"x", [32], qtype=99) + bytes(200),
        r"tensor 'x' has unknown type 99",
    ),
    "rows that do not fill blocks": (
        _header(1, 0) + _tensor(b"x", [33, 2], qtype=8) + bytes(200),
        r"rows of 33 do not fill Q8_0 blocks of 32",
    ),
    "bad alignment": (
        _header(0, 1) + _string(b"general.alignment") + struct.pack("<II", 4, 3),
        r"general.alignment 3 is invalid",
    ),
}


@pytest.mark.parametrize("case", CRAFTED)
def test_crafted_files_get_a_clear_message_at_bounded_cost(tmp_path, case):
    data, message = CRAFTED[case]
    path = _file(tmp_path, data)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError, match=message):
            GGUFFile(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"{case}: {peak:,} bytes allocated"


def test_files_without_an_architecture_or_tokenizer_are_refused(tmp_path):
    path = _file(tmp_path, _header(0, 1) + _kv_string(b"general.architecture", b"mamba"))
    with pytest.raises(ModelFormatError, match=r"architecture 'mamba' is not supported"):
        load_model(path)
    path = _file(tmp_path, _header(0, 1) + _kv_string(b"general.architecture", b"llama"))
    with pytest.raises(ModelFormatError, match=r"no token embedding"):
        load_model(path)


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 0.9, 0.999])
def test_truncated_real_file(tmp_path, tiny_gguf, fraction):
    data = tiny_gguf.read_bytes()
    path = _file(tmp_path, data[: int(len(data) * fraction)], "cut.gguf")
    with pytest.raises(ModelFormatError, match=r"cut\.gguf is truncated or corrupt"):
        load_model(path)


def test_corrupt_tokenizer_metadata(tmp_path, tiny_gguf):
    data = tiny_gguf.read_bytes().replace(b"gpt-2", b"gpt-9", 1)
    with pytest.raises(ModelFormatError, match=r"pre-tokenizer 'gpt-9' is not supported"):
        load_model(_file(tmp_path, data))


def test_a_gguf_without_the_suffix_is_recognised_by_its_magic(tmp_path, tiny_gguf):
    path = _file(tmp_path, tiny_gguf.read_bytes(), "model.weights")
    assert load_model(path).architecture == "llama"


def test_a_folder_with_one_gguf_opens_it(tmp_path, tiny_gguf):
    _file(tmp_path, tiny_gguf.read_bytes(), "only.gguf")
    assert load_model(tmp_path).architecture == "llama"


def test_listing_leaves_the_vocabulary_undecoded_but_checks_it(tmp_path, tiny_gguf, bpe_tokenizer):
    from tokenscope.lm.formats.gguf_file import SkippedStrings

    with GGUFFile(tiny_gguf) as full, GGUFFile(tiny_gguf, strings=False) as listed:
        assert listed.metadata["tokenizer.ggml.tokens"] == SkippedStrings(bpe_tokenizer.vocab_size)
        assert len(full.metadata["tokenizer.ggml.tokens"]) == bpe_tokenizer.vocab_size
        assert listed.tensors == full.tensors
        assert listed.metadata["general.architecture"] == "llama"
    data = tiny_gguf.read_bytes()
    # Cut inside the vocabulary: both readers refuse it, naming the string where it ends.
    start = data.index(b"tokenizer.ggml.tokens")
    for cut in (start + 40, start + 3000):
        path = _file(tmp_path, data[:cut], f"cut{cut}.gguf")
        for strings in (True, False):
            with pytest.raises(
                ModelFormatError, match=r"truncated or corrupt: metadata 'tokenizer.ggml.tokens'"
            ):
                GGUFFile(path, strings=strings)
