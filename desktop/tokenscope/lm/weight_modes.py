"""The ways a model's weights can be held in memory (no torch import: the command line's
--help and the window's toolbar read them)."""

from __future__ import annotations

AUTO = "auto"  # GGUF: as the file stores them (lm.formats.gguf_packing); other models float32
INT8 = "int8"  # the blocks' matrices as int8 rows (lm.formats.int8)
INT4 = "int4"  # the blocks' matrices and the head as 4-bit groups of 32 (lm.packed)
DTYPE_CHOICES = (AUTO, "float32", "bfloat16", INT8, INT4)
