"""Hugging Face folders (config.json, *.safetensors, tokenizer.json) of tiny random models,
saved by transformers itself, load with the same logits; broken folders say what is wrong."""

import json
import pickle
import struct

import pytest
import torch
from safetensors.torch import save_file

from tokenscope.lm import ModelFormatError, load_model


def _save(hf, tokenizer, folder, **kwargs):
    hf.save_pretrained(folder, **kwargs)
    tokenizer.save(folder / "tokenizer.json")
    return folder


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory, hf_models, bpe_tokenizer):
    return _save(hf_models["llama"], bpe_tokenizer, tmp_path_factory.mktemp("hf") / "llama")


def _max_diff(model, hf, tokenizer):
    ids = torch.tensor([tokenizer.encode("The capital of Indonesia is Jakarta. 语言")])
    with torch.no_grad():
        return (model.transformer(ids) - hf(ids).logits).abs().max().item()


@pytest.mark.parametrize(
    "name", ["llama", "llama-tied", "qwen2", "gpt2", "gpt_neox", "qwen3", "olmo2", "gemma3_text"]
)
def test_folder_matches_transformers(tmp_path, hf_models, bpe_tokenizer, name):
    folder = _save(hf_models[name], bpe_tokenizer, tmp_path / name)
    model = load_model(folder)
    assert _max_diff(model, hf_models[name], bpe_tokenizer) < 1e-4
    assert model.architecture == hf_models[name].config.model_type
    assert model.quantization == "F32"


def test_sharded_folder(tmp_path, hf_models, bpe_tokenizer):
    folder = _save(hf_models["llama"], bpe_tokenizer, tmp_path / "sharded", max_shard_size="100KB")
    assert (folder / "model.safetensors.index.json").is_file()
    assert len(list(folder.glob("*.safetensors"))) > 1
    assert _max_diff(load_model(folder), hf_models["llama"], bpe_tokenizer) < 1e-4


def test_bfloat16_files_are_widened(tmp_path, hf_models, bpe_tokenizer):
    import copy

    hf = hf_models["llama"]
    # A copy: .to(bfloat16) would also round the shared model's RoPE frequencies (a buffer),
    # and .float() cannot give them back, which later tests would see.
    folder = _save(copy.deepcopy(hf).to(torch.bfloat16), bpe_tokenizer, tmp_path / "bf16")
    model = load_model(folder)
    assert model.quantization == "BF16"
    assert model.transformer.embed.weight.dtype == torch.float32
    assert _max_diff(model, hf, bpe_tokenizer) < 0.05


def test_gpt2_hub_names_without_the_transformer_prefix(tmp_path, hf_models, bpe_tokenizer):
    hf = hf_models["gpt2"]
    folder = _save(hf, bpe_tokenizer, tmp_path / "gpt2")
    state = {
        k.removeprefix("transformer."): v.contiguous()
        for k, v in hf.state_dict().items()
        if k != "lm_head.weight"
    }
    save_file(state, folder / "model.safetensors")
    assert _max_diff(load_model(folder), hf, bpe_tokenizer) < 1e-4


def test_chat_template_bos_and_add_bos_come_from_tokenizer_config(llama_folder, tmp_path):
    import shutil

    folder = tmp_path / "chat"
    shutil.copytree(llama_folder, folder)
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "chat_template": "{{ bos_token }}{% for m in messages %}[{{ m['content'] }}]"
                "{% endfor %}",
                "bos_token": "<|endoftext|>",
                "add_bos_token": True,
            }
        )
    )
    model = load_model(folder)
    assert model.add_bos and model.tokenizer.bos_id == model.tokenizer.backend.token_to_id(
        "<|endoftext|>"
    )
    assert model.chat_prompt("hi") == "<|endoftext|>[hi]"


def test_unsupported_architecture_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "falcon"}))
    with pytest.raises(
        ModelFormatError, match=r"'falcon' is not supported \(supported: gemma2, gemma3_text, gpt2"
    ):
        load_model(tmp_path)


def test_missing_tokenizer(llama_folder, tmp_path):
    import shutil

    folder = tmp_path / "no-tok"
    shutil.copytree(llama_folder, folder)
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.model").write_bytes(b"\x0a\x05")
    with pytest.raises(ModelFormatError, match=r"has weights but no tokenizer\.json"):
        load_model(folder)


def test_pickled_weights_are_never_opened(tmp_path, llama_folder):
    marker = tmp_path / "was-unpickled"

    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((llama_folder / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ModelFormatError, match=r"pytorch_model\.bin but no model\.safetensors"):
        load_model(folder)
    assert not marker.exists()


def test_shards_outside_the_folder_or_missing(tmp_path, llama_folder):
    folder = tmp_path / "index"
    folder.mkdir()
    (folder / "config.json").write_text((llama_folder / "config.json").read_text())
    index = {"weight_map": {"model.embed_tokens.weight": "../../etc/passwd.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelFormatError, match=r"names a shard .* outside the folder"):
        load_model(folder)
    index["weight_map"]["model.embed_tokens.weight"] = "model-00001-of-00002.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelFormatError, match=r"lacks the shard model-00001-of-00002"):
        load_model(folder)


@pytest.mark.parametrize(
    "damage",
    ["truncated", "absurd header length", "header not JSON", "data offsets past the end"],
)
def test_corrupt_safetensors(tmp_path, llama_folder, damage):
    import shutil

    folder = tmp_path / "corrupt"
    shutil.copytree(llama_folder, folder)
    path = folder / "model.safetensors"
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "absurd header length":
        data = struct.pack("<Q", 2**62) + data[8:]
    elif damage == "header not JSON":
        data = data[:8] + b"\xff" * n + data[8 + n :]
    else:
        header = json.loads(data[8 : 8 + n])
        key = next(k for k in header if k != "__metadata__")
        header[key]["data_offsets"] = [0, 2**40]
        text = json.dumps(header).encode().ljust(n)
        data = struct.pack("<Q", len(text)) + text + data[8 + n :]
    path.write_bytes(data)
    with pytest.raises(ModelFormatError, match=r"model\.safetensors is not a readable safetensors"):
        load_model(folder)


def test_config_without_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ModelFormatError, match=r"Hugging Face model folder without weights"):
        load_model(tmp_path)
