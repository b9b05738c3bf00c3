"""Native checkpoint folders: round-trip, and a clear refusal of everything else."""

import json
import pickle

import pytest
import torch

import tokenscope
from tokenscope.lm import ModelFormatError, ModelNotFoundError, load_model
from tokenscope.lm.checkpoint import FORMAT_VERSION


def test_round_trip_keeps_logits_tokenizer_and_config(tiny_model, checkpoint):
    loaded = tokenscope.load_model(str(checkpoint))
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    assert loaded.config == tiny_model.config
    assert loaded.name == tiny_model.name
    text = "The capital of Indonesia is"
    assert loaded.encode(text) == tiny_model.encode(text)
    assert loaded.tokenizer.eos_id == tiny_model.tokenizer.eos_id
    a = tiny_model.predict_next_token_probabilities(text).vector()
    b = loaded.predict_next_token_probabilities(text).vector()
    assert abs(a - b).max() == 0.0
    meta = json.loads((checkpoint / "config.json").read_text())
    assert meta["format"] == "tokenscope-checkpoint" and meta["format_version"] == FORMAT_VERSION


def test_llama_variant_round_trip(make_model, tmp_path):
    model = make_model("tiny-llama", seed=3)
    loaded = load_model(model.save(tmp_path / "llama"))
    ids = torch.tensor([model.encode("def add(a, b):")])
    with torch.no_grad():
        assert torch.equal(model.transformer(ids), loaded.transformer(ids))


def test_saving_again_replaces_files_and_leaves_no_temporaries(tiny_model, checkpoint):
    tiny_model.save(checkpoint)
    assert not [p for p in checkpoint.iterdir() if p.name.endswith(".tmp")]
    assert load_model(checkpoint).config == tiny_model.config


def test_a_file_inside_the_folder_opens_the_folder(checkpoint):
    assert load_model(checkpoint / "model.safetensors").config.name == "tiny"


def test_missing_path(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"neither a known name"):
        load_model(tmp_path / "nope")


def test_builtin_missing_says_so(monkeypatch, tmp_path):
    from tokenscope.lm import loading

    monkeypatch.setattr(loading, "builtin_model_path", lambda: tmp_path / "absent")
    with pytest.raises(ModelNotFoundError, match=r"bundled default model"):
        load_model("builtin")


def test_folder_without_config(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelFormatError, match=r"no config\.json \(found: notes\.txt\)"):
        load_model(tmp_path)


def test_hugging_face_folder_is_named_as_such(tmp_path):
    # Hugging Face folders load (tests/lm/formats/test_hf_folder.py); one with only a
    # config.json is named for what it is and what it lacks.
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ModelFormatError, match=r"Hugging Face model folder without weights"):
        load_model(tmp_path)


def test_foreign_and_broken_config(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match=r"not valid JSON"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ModelFormatError, match=r"not a Tokenscope checkpoint"):
        load_model(tmp_path)


def test_newer_format_version_asks_for_an_update(checkpoint):
    path = checkpoint / "config.json"
    meta = json.loads(path.read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match=r"update Tokenscope"):
        load_model(checkpoint)


def test_invalid_model_section(checkpoint):
    path = checkpoint / "config.json"
    meta = json.loads(path.read_text())
    meta["model"]["d_model"] = 33
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match=r"not divisible"):
        load_model(checkpoint)


def test_weights_that_do_not_match_the_config(checkpoint):
    path = checkpoint / "config.json"
    meta = json.loads(path.read_text())
    meta["model"]["n_layer"] = 3
    meta["model"]["d_ff"] = 64
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match=r"missing tensors: blocks.2.*wrong shapes"):
        load_model(checkpoint)


def test_truncated_weights(checkpoint):
    path = checkpoint / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match=r"not a readable safetensors file"):
        load_model(checkpoint)


@pytest.mark.parametrize("garbage", [b"", b"\x00" * 7, b"\xff" * 64, b"GGUF\x03\x00\x00\x00"])
def test_garbage_weights(checkpoint, garbage):
    (checkpoint / "model.safetensors").write_bytes(garbage)
    with pytest.raises(ModelFormatError, match=r"model.safetensors"):
        load_model(checkpoint)


def test_corrupt_tokenizer(checkpoint):
    (checkpoint / "tokenizer.json").write_text('{"hello": 1}')
    with pytest.raises(ModelFormatError, match=r"tokenizer.json"):
        load_model(checkpoint)
    (checkpoint / "tokenizer.json").unlink()
    with pytest.raises(ModelFormatError, match=r"no tokenizer.json"):
        load_model(checkpoint)


class _Boom:
    """Unpickling this writes a marker file: proof that a pickle was (not) opened."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("name", ["model.bin", "weights.pt", "last.ckpt"])
def test_pickles_are_never_opened(tmp_path, name):
    marker = tmp_path / "was-unpickled"
    path = tmp_path / name
    path.write_bytes(pickle.dumps(_Boom(str(marker))))
    with pytest.raises(ModelFormatError, match=r"never loads pickles"):
        load_model(path)
    assert not marker.exists()


def test_folder_with_only_a_pickle_is_refused(checkpoint, tmp_path):
    marker = tmp_path / "was-unpickled"
    (checkpoint / "model.safetensors").unlink()
    (checkpoint / "pytorch_model.bin").write_bytes(pickle.dumps(_Boom(str(marker))))
    with pytest.raises(ModelFormatError, match=r"pytorch_model\.bin .*never loaded"):
        load_model(checkpoint)
    assert not marker.exists()


def test_unknown_file_type(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x01")
    with pytest.raises(ModelFormatError, match=r"not a model Tokenscope can open \(\.onnx\)"):
        load_model(path)


def test_saved_files_are_readable_by_others(checkpoint):
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (checkpoint / name).stat().st_mode & 0o044 == 0o044, name
