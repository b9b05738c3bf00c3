"""Our torch dequantizers give exactly the numbers of gguf's reference (NumPy) ones."""

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize as reference

from tokenscope.lm import ModelFormatError
from tokenscope.lm.formats.dequantize import SUPPORTED, dequantize

FLOAT16_FIELDS = {Q.Q8_0: [0], Q.Q4_0: [0], Q.Q4_1: [0, 2]}


def _random_blocks(qtype: Q, rows: int, cols: int) -> np.ndarray:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(int(qtype))
    data = rng.integers(0, 256, size=(rows * cols // block, size), dtype=np.uint8)
    for offset in FLOAT16_FIELDS.get(qtype, []):
        # Random bytes would include inf and NaN scales; real files hold finite ones, and
        # subnormal, zero and negative scales too.
        scale = rng.normal(0, 0.05, size=len(data)).astype(np.float16)
        scale[:3] = [np.float16(6e-8), np.float16(-0.0), np.float16(0)]
        data[:, offset : offset + 2] = scale.view(np.uint8).reshape(-1, 2)
    return data.reshape(rows, -1)


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q4_0, Q.Q4_1])
def test_block_types_match_gguf(qtype):
    raw = _random_blocks(qtype, 6, 128)
    ours = dequantize(raw, qtype, (6, 128))
    np.testing.assert_array_equal(ours.numpy(), reference(raw, qtype).reshape(6, 128))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_float_types_are_exact(dtype):
    values = np.random.default_rng(0).normal(size=(3, 64)).astype(dtype)
    qtype = Q.F32 if dtype == np.float32 else Q.F16
    raw = values.view(np.uint8)
    raw.flags.writeable = False  # as the file's memory map is
    ours = dequantize(raw, qtype, (3, 64))
    assert ours.dtype == torch.float32 and ours.is_contiguous()
    np.testing.assert_array_equal(ours.numpy(), values.astype(np.float32))
    ours.add_(1)  # a copy of its own, never the read-only file
    assert raw.view(dtype)[0, 0] == values[0, 0]


def test_bfloat16_matches_gguf():
    raw = gguf.quants.quantize(
        np.random.default_rng(1).normal(size=(2, 64)).astype(np.float32), Q.BF16
    )
    np.testing.assert_array_equal(
        dequantize(raw, Q.BF16, (2, 64)).numpy(), reference(raw, Q.BF16).reshape(2, 64)
    )


def test_unsupported_types_are_named():
    assert Q.IQ2_XXS not in SUPPORTED
    with pytest.raises(ModelFormatError, match=r"'blk.0.x' is IQ2_XXS.*cannot read.*Q4_K"):
        dequantize(np.zeros((1, 66), np.uint8), Q.IQ2_XXS, (1, 256), "blk.0.x")
