"""Exported Hugging Face folders load in transformers and give the same logits."""

import subprocess
import sys

import pytest
import torch
import transformers

from tokenscope.lm import TokenscopeError
from tokenscope.train.export import export_hugging_face


@pytest.mark.parametrize(
    "name, overrides, cls",
    [
        ("tiny", {}, "GPT2LMHeadModel"),
        ("tiny", {"tie_embeddings": False}, "GPT2LMHeadModel"),
        ("tiny-llama", {}, "LlamaForCausalLM"),
        ("tiny-llama", {"tie_embeddings": True, "n_kv_head": 4}, "LlamaForCausalLM"),
    ],
)
def test_export_loads_in_transformers_with_the_same_logits(
    make_model, tmp_path, name, overrides, cls
):
    model = make_model(name, seed=5, **overrides)
    with torch.no_grad():  # non-zero biases and norms, so that every tensor is checked
        for p in model.transformer.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    folder = export_hugging_face(model, tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    assert type(hf).__name__ == cls
    ids = torch.tensor([model.encode("The capital of Indonesia is Jakarta.")])
    with torch.no_grad():
        ours = model.transformer(ids)
        theirs = hf(ids).logits
    assert (ours - theirs).abs().max().item() < 1e-4
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    assert tok("The capital").input_ids == model.encode("The capital")


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("tiny", {"position": "rope"}),
        ("tiny-llama", {"qk_norm": "head"}),  # Qwen3-like: the Llama format would drop it
        ("tiny-llama", {"norm_placement": "post"}),  # OLMo 2-like
        ("tiny-llama", {"head_size": 16}),
    ],
)
def test_a_variant_the_formats_cannot_hold_is_refused(make_model, tmp_path, name, overrides):
    model = make_model(name, **overrides)
    with pytest.raises(TokenscopeError, match="only GPT-2-style"):
        export_hugging_face(model, tmp_path / "hf")


def test_export_command(checkpoint, tmp_path):
    out = tmp_path / "exported"
    proc = subprocess.run(
        [sys.executable, "-m", "tokenscope", "export", str(checkpoint), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
