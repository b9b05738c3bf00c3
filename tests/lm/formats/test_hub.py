"""Models from the Hugging Face Hub: the real `huggingface_hub` client against a Hub served on
the loopback address (tests/lm/formats/hub_server.py) with HF_ENDPOINT pointed at it. There is
no other network here. `tokenscope models pull` runs as a person runs it, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tokenscope.lm import hub_listing, load_model
from tokenscope.lm.errors import ModelNotFoundError

from .conftest import write_gguf
from .hub_server import HubServer

PYTHIA = "EleutherAI/pythia-tiny"


def _pythia(vocab: int, seed: int):
    import transformers

    torch.manual_seed(seed)
    config = transformers.GPTNeoXConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=128,
        rotary_pct=0.25,
    )
    model = transformers.GPTNeoXForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.fixture(scope="module")
def pythia(tmp_path_factory, bpe_tokenizer):
    """Two training checkpoints of one tiny Pythia-shaped model: revision -> (folder, model)."""
    out = {}
    for revision, seed in (("step1000", 1), ("main", 2)):
        folder = tmp_path_factory.mktemp(f"pythia-{revision}")
        model = _pythia(bpe_tokenizer.vocab_size, seed)
        model.save_pretrained(folder)
        bpe_tokenizer.save(folder / "tokenizer.json")
        # Saved as Pythia's own files are: the head named embed_out, not lm_head.
        assert "embed_out.weight" in load_file(folder / "model.safetensors")
        (folder / "pytorch_model.bin").write_bytes(b"a pickle that must never be fetched")
        (folder / "README.md").write_text("# not needed\n")
        out[revision] = (folder, model)
    return out


@pytest.fixture
def hub(pythia, tmp_path, monkeypatch, hf_models, bpe_tokenizer):
    """The loopback Hub with its repositories, and this process pointed at it and at a fresh
    cache (the client reads these settings when called)."""
    from huggingface_hub import constants

    with HubServer() as server:
        for revision, (folder, _) in pythia.items():
            server.add_folder(PYTHIA, revision, folder, tags=["license:apache-2.0"],
                              parameters=200_000)  # fmt: skip
        server.add_folder("acme/gated-model", "main", pythia["main"][0], gated=True)
        server.add("acme/pickles-only", "main", {"config.json": b"{}", "pytorch_model.bin": b"x"})
        gguf = write_gguf(tmp_path / "tiny.gguf", hf_models["llama"], bpe_tokenizer)
        server.add("acme/tiny-GGUF", "main", {"tiny-f32.gguf": gguf.read_bytes(), "README.md": b""})
        server.add("acme/two-GGUF", "main", {"a.gguf": gguf.read_bytes(),
                                             "b.gguf": gguf.read_bytes() + b"\0"})  # fmt: skip
        sharded = tmp_path / "sharded"
        hf_models["llama"].save_pretrained(sharded, max_shard_size="100KB")
        bpe_tokenizer.save(sharded / "tokenizer.json")
        (sharded / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
        (sharded / "consolidated.safetensors").write_bytes(b"a copy the loader never reads")
        server.add_folder("acme/sharded", "main", sharded)
        server.add("acme/phi", "main", {"config.json": b'{"model_type": "phi3"}',
                                        "model.safetensors": bytes(4096)})  # fmt: skip
        cache = tmp_path / "hf-cache"
        env = {"HF_ENDPOINT": server.url, "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path),
               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
               "TOKENSCOPE_HOME": str(tmp_path / "home")}  # fmt: skip
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        for key in ("HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        template = server.url + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        server.env = env
        yield server


def pull(hub, ref, *extra, env=None):
    return subprocess.run(
        [sys.executable, "-m", "tokenscope", "models", "pull", ref, *extra],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **hub.env, **(env or {})},
    )


def _logits(model, ids):
    with torch.no_grad():
        return model.transformer(torch.tensor([ids]))[0, -1]


@pytest.mark.slow
def test_a_pythia_checkpoint_is_pulled_at_a_revision_and_predicts_as_transformers(
    hub, pythia, bpe_tokenizer
):
    proc = pull(hub, f"hf:{PYTHIA}@step1000")
    assert proc.returncode == 0, proc.stderr
    assert "is in the Hugging Face cache" in proc.stdout
    fetched = {path.rsplit("/", 1)[-1] for method, path, _ in hub.requests if method == "GET"}
    assert "model.safetensors" in fetched and "tokenizer.json" in fetched
    assert "pytorch_model.bin" not in fetched and "README.md" not in fetched  # only what is read

    ids = bpe_tokenizer.encode("The capital of Indonesia is Jakarta.")
    ours = load_model(f"hf:{PYTHIA}@step1000")
    assert ours.architecture == "gpt_neox" and ours.name == f"hf:{PYTHIA}@step1000"
    with torch.no_grad():
        expected = pythia["step1000"][1](torch.tensor([ids])).logits[0, -1]
    assert (_logits(ours, ids) - expected).abs().max().item() < 1e-4
    # Another revision is another checkpoint: not downloaded yet, then different numbers.
    with pytest.raises(ModelNotFoundError, match=r"not downloaded yet.*models pull hf:"):
        load_model(f"hf:{PYTHIA}")
    proc = pull(hub, f"hf:{PYTHIA}")
    assert proc.returncode == 0, (proc.stderr, hub.requests[-6:])
    later = load_model(f"hf:{PYTHIA}")
    assert (_logits(later, ids) - _logits(ours, ids)).abs().max().item() > 1e-2


def test_a_dropped_connection_resumes_inside_the_file(hub):
    """The client resumes with a Range request from the last chunk it kept."""
    import hashlib
    import random

    data = random.Random(0).randbytes(24 * 1024 * 1024)
    hub.add("acme/big-GGUF", "main", {"big.gguf": data})
    hub.drop_once.add("big.gguf")
    proc = pull(hub, "hf:acme/big-GGUF/big.gguf")
    assert proc.returncode == 0, proc.stderr
    gets = [r for m, p, r in hub.requests if m == "GET" and p.endswith("/big.gguf")]
    assert len(gets) == 2 and gets[0] is None
    assert gets[1] is not None and gets[1].startswith("bytes=") and gets[1] != "bytes=0-"
    path = Path(proc.stdout.strip().rsplit(" at ", 1)[1])
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_a_cancelled_pull_keeps_finished_files_and_resumes(hub):
    from tokenscope.lm import hub as hub_module

    cancel = threading.Event()
    seen = []

    def on_progress(transfer):
        seen.append((transfer.file, transfer.done, transfer.total))
        if transfer.file == "model.safetensors":
            cancel.set()

    with pytest.raises(hub_module.DownloadCancelled):
        hub_module.pull(f"hf:{PYTHIA}", on_progress, cancel)
    assert seen and seen[-1][2] > 0
    before = [p for m, p, _ in hub.requests if m == "GET" and "/resolve/" in p]
    path = hub_module.pull(f"hf:{PYTHIA}")
    after = [p for m, p, _ in hub.requests if m == "GET" and "/resolve/" in p][len(before) :]
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert not any(p.endswith("/config.json") for p in after)  # finished before the cancel
    assert any(p.endswith("/model.safetensors") for p in after)


def test_a_gated_repository_says_how_to_accept_its_licence(hub):
    proc = pull(hub, "hf:acme/gated-model")
    assert proc.returncode == 2
    assert "acme/gated-model is gated: accept its licence on https://huggingface.co/acme" in (
        proc.stderr
    )
    assert "HF_TOKEN" in proc.stderr and "Traceback" not in proc.stderr


def test_a_token_is_sent_when_set(hub):
    """With HF_TOKEN (accepted licence) the same repository downloads."""
    proc = pull(hub, "hf:acme/gated-model", env={"HF_TOKEN": "hf_test_token"})
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "ref, message",
    [
        ("hf:acme/no-such-model", "acme/no-such-model was not found on the Hub"),
        (f"hf:{PYTHIA}@step9", f"{PYTHIA} has no revision 'step9'"),
        ("hf:acme/tiny-GGUF/other.gguf", "has no file 'other.gguf' (it has tiny-f32.gguf)"),
        ("hf:acme/pickles-only", "only as PyTorch pickles"),
        ("hf:acme/tiny-GGUF", "pull one of them, e.g. hf:acme/tiny-GGUF/tiny-f32.gguf"),
        ("hf:acme", "is not a Hub model id"),
        ("hf:acme/x/model.bin", "only a .gguf file can be named"),
    ],
)
def test_what_cannot_be_pulled_is_named(hub, ref, message):
    proc = pull(hub, ref)
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_a_damaged_download_is_refused_and_removed(hub):
    hub.corrupt.add("model.safetensors")
    proc = pull(hub, f"hf:{PYTHIA}")
    assert proc.returncode == 2
    assert proc.stderr.startswith("tokenscope: error: model.safetensors arrived damaged")
    cache = Path(hub.env["HF_HUB_CACHE"])
    assert not [p for p in cache.rglob("*") if p.name == "model.safetensors" or (p.is_symlink()
                and not p.exists())]  # fmt: skip
    with pytest.raises(ModelNotFoundError):
        load_model(f"hf:{PYTHIA}")


def test_a_gguf_file_is_pulled_alone_and_opens(hub, hf_models, bpe_tokenizer):
    proc = pull(hub, "hf:acme/tiny-GGUF/tiny-f32.gguf")
    assert proc.returncode == 0, proc.stderr
    fetched = [p for m, p, _ in hub.requests if m == "GET" and "/resolve/" in p]
    assert fetched and all(p.endswith("tiny-f32.gguf") for p in fetched)
    model = load_model("hf:acme/tiny-GGUF/tiny-f32.gguf", dtype="float32")
    ids = bpe_tokenizer.encode("GGUF from the Hub")
    with torch.no_grad():
        expected = hf_models["llama"](torch.tensor([ids])).logits[0, -1]
    assert (_logits(model, ids) - expected).abs().max().item() < 1e-4


def test_offline_mode_uses_the_cache_only(hub):
    assert pull(hub, f"hf:{PYTHIA}@step1000").returncode == 0
    count = len(hub.requests)
    offline = {"HF_HUB_OFFLINE": "1"}
    proc = pull(hub, f"hf:{PYTHIA}@step1000", env=offline)
    assert proc.returncode == 0, proc.stderr
    assert len(hub.requests) == count  # nothing asked of the network
    proc = pull(hub, "hf:acme/tiny-GGUF/tiny-f32.gguf", env=offline)
    assert proc.returncode == 2
    assert "HF_HUB_OFFLINE is set and hf:acme/tiny-GGUF/tiny-f32.gguf is not in the" in (
        proc.stderr
    )


def test_progress_is_reported_as_json_lines_for_the_window(hub):
    import json

    proc = pull(hub, f"hf:{PYTHIA}", "--progress-json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    assert lines and lines[-1]["done"] == lines[-1]["total"] > 0
    assert {"file", "speed", "left"} <= set(lines[-1])


def test_search_lists_models_with_size_format_and_licence(hub):
    from tokenscope.lm.hub_listing import search

    results = search("pythia")
    assert [r.id for r in results] == [PYTHIA]
    r = results[0]
    assert r.parameters == 200_000 and r.license == "apache-2.0" and not r.gated
    assert r.size_bytes and r.size_bytes > 0
    gated = search("gated")[0]
    assert gated.gated


def test_the_cache_is_listed_and_a_revision_deleted(hub):
    from tokenscope.lm import hub as hub_module
    from tokenscope.lm.catalog import catalog

    hub_module.pull(f"hf:{PYTHIA}@step1000")
    hub_module.pull("hf:acme/tiny-GGUF/tiny-f32.gguf")
    refs = {m.ref for m in hub_listing.cached_models()}
    assert refs == {f"hf:{PYTHIA}@step1000", "hf:acme/tiny-GGUF/tiny-f32.gguf"}
    entries = {e.name: e for e in catalog() if e.kind == "hub"}
    assert entries[f"hf:{PYTHIA}@step1000"].architecture == "gpt_neox"
    assert entries["hf:acme/tiny-GGUF/tiny-f32.gguf"].quantization == "F32"
    assert entries[f"hf:{PYTHIA}@step1000"].openable and entries[f"hf:{PYTHIA}@step1000"].removable
    freed = hub_listing.delete_cached(f"hf:{PYTHIA}@step1000")
    assert freed > 0
    assert {m.ref for m in hub_listing.cached_models()} == {"hf:acme/tiny-GGUF/tiny-f32.gguf"}
    with pytest.raises(ModelNotFoundError):
        load_model(f"hf:{PYTHIA}@step1000")


def test_search_from_the_command_line(hub):
    proc = subprocess.run(
        [sys.executable, "-m", "tokenscope", "models", "search", "acme"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **hub.env},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:2] == ["model", "parameters"]
    gated = next(line for line in lines if line.startswith("acme/gated-model"))
    assert gated.endswith(", gated")


def test_a_repository_offers_its_folder_or_its_gguf_files(hub):
    from tokenscope.lm.errors import ModelFormatError
    from tokenscope.lm.hub import choices

    folder = choices(PYTHIA, "step1000")
    assert [c.ref for c in folder] == [f"hf:{PYTHIA}@step1000"] and folder[0].size_bytes > 0
    assert [c.ref for c in choices("acme/tiny-GGUF")] == ["hf:acme/tiny-GGUF/tiny-f32.gguf"]
    with pytest.raises(ModelFormatError, match="never loads pickles"):
        choices("acme/pickles-only")


def test_a_sharded_folder_fetches_the_listed_shards_and_its_chat_template(hub, hf_models):
    from tokenscope.lm import hub as hub_module

    path = hub_module.pull("hf:acme/sharded")
    fetched = {p.rsplit("/", 1)[-1] for m, p, _ in hub.requests if m == "GET" and "/resolve/" in p}
    assert "consolidated.safetensors" not in fetched and "chat_template.jinja" in fetched
    assert len([n for n in fetched if n.endswith(".safetensors")]) > 1
    model = load_model("hf:acme/sharded")
    assert model.chat_template is not None
    ids = [5, 6, 7, 8]
    with torch.no_grad():
        expected = hf_models["llama"](torch.tensor([ids])).logits[0, -1]
    assert (_logits(model, ids) - expected).abs().max().item() < 1e-4
    # One shard lost: the folder is incomplete, neither listed nor openable.
    next(path.glob("model-00002-*.safetensors")).unlink()
    assert hub_module.cached_path("hf:acme/sharded") is None
    assert "hf:acme/sharded" not in {m.ref for m in hub_listing.cached_models()}


def test_an_unsupported_architecture_is_refused_before_its_weights_come(hub):
    proc = pull(hub, "hf:acme/phi")
    assert proc.returncode == 2
    assert "'phi3' is not supported" in proc.stderr
    assert not any(p.endswith("model.safetensors") for m, p, _ in hub.requests if m == "GET")


def test_a_resumed_pull_counts_what_it_already_has(hub):
    from tokenscope.lm import hub as hub_module

    cancel = threading.Event()

    def stop_at_weights(transfer):
        if transfer.file == "model.safetensors":
            cancel.set()

    with pytest.raises(hub_module.DownloadCancelled):
        hub_module.pull(f"hf:{PYTHIA}", stop_at_weights, cancel)
    seen = []
    hub_module.pull(f"hf:{PYTHIA}", lambda t: seen.append((t.done, t.total)))
    assert seen[0][0] > 0  # the files finished before the cancel count from the start
    assert seen[-1][0] == seen[-1][1] and all(d <= t for d, t in seen)


def test_deleting_one_gguf_keeps_the_other(hub):
    from tokenscope.lm import hub as hub_module

    hub_module.pull("hf:acme/two-GGUF/a.gguf")
    hub_module.pull("hf:acme/two-GGUF/b.gguf")
    assert hub_listing.delete_cached("hf:acme/two-GGUF/a.gguf") > 0
    assert hub_module.cached_path("hf:acme/two-GGUF/a.gguf") is None
    assert hub_module.cached_path("hf:acme/two-GGUF/b.gguf") is not None
    assert hub_listing.delete_cached("hf:acme/two-GGUF/b.gguf") > 0
    assert {m.ref for m in hub_listing.cached_models()} == set()
    with pytest.raises(ModelNotFoundError, match="is not in the Hugging Face cache"):
        hub_listing.delete_cached("hf:acme/two-GGUF/b.gguf")


def test_a_cancelled_file_continues_where_it_stopped(hub):
    """Cancelled part-way through a file, the next pull asks only for the rest (Range)."""
    import hashlib
    import random

    from tokenscope.lm import hub as hub_module

    data = random.Random(1).randbytes(8 * 1024 * 1024)
    hub.add("acme/resume-GGUF", "main", {"model.gguf": data})
    cancel = threading.Event()

    def stop_after_two_megabytes(transfer):
        if transfer.done >= 2 * 1024 * 1024:
            cancel.set()

    with pytest.raises(hub_module.DownloadCancelled):
        hub_module.pull("hf:acme/resume-GGUF/model.gguf", stop_after_two_megabytes, cancel)
    assert hub_module.cached_path("hf:acme/resume-GGUF/model.gguf") is None
    seen = []
    path = hub_module.pull("hf:acme/resume-GGUF/model.gguf", lambda t: seen.append(t.done))
    gets = [r for m, p, r in hub.requests if m == "GET" and p.endswith("/model.gguf")]
    assert len(gets) == 2 and gets[0] is None
    assert gets[1] is not None and gets[1].startswith("bytes=")
    kept = int(gets[1].removeprefix("bytes=").rstrip("-"))
    assert 1 << 20 <= kept < len(data)  # (the chunk read when the cancel came is not kept)
    assert seen[0] >= kept  # progress starts where the first pull stopped
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert not list(path.parent.parent.parent.rglob("*.tokenscope-partial*"))


def test_revisions_are_listed_main_first_then_as_numbers(hub, pythia):
    from tokenscope.lm.hub import revisions

    for step in ("step10000", "step200"):
        hub.add_folder(PYTHIA, step, pythia["main"][0])
    assert revisions(PYTHIA) == ["main", "step200", "step1000", "step10000"]
    with pytest.raises(ModelNotFoundError, match="was not found on the Hub"):
        revisions("acme/no-such-model")


def test_hostile_headers_never_name_a_path(hub, tmp_path):
    """huggingface_hub named a blob after the server's ETag: `../../x` or an absolute path
    wrote outside the cache. The ETag, the commit header and the like are not read now."""
    outside = tmp_path / "outside"
    outside.mkdir()
    hub.file_headers = {"ETag": '"../../../../outside/pwned"', "X-Repo-Commit": "../../x",
                        "X-Linked-Etag": f'"{outside}/pwned-abs"'}  # fmt: skip
    proc = pull(hub, "hf:acme/tiny-GGUF/tiny-f32.gguf")
    assert proc.returncode == 0, proc.stderr
    assert not list(outside.iterdir())
    cache = Path(hub.env["HF_HUB_CACHE"])
    written = [p for p in tmp_path.rglob("*") if p.is_file() and cache not in p.parents]
    assert all("pwned" not in p.name for p in written)


@pytest.mark.parametrize("sha256", ["/etc/hostname", "../../../../outside/x", "A" * 64, "0" * 63])
def test_a_listing_whose_hash_is_not_one_is_refused(hub, tmp_path, sha256):
    """A SHA-256 that was an existing file's absolute path counted as 'already downloaded' and
    let a damaged file into the cache with exit 0."""

    def lie(listing):
        for sibling in listing["siblings"]:
            if "lfs" in sibling:
                sibling["lfs"]["sha256"] = sha256
        return listing

    hub.edit_listing = lie
    hub.corrupt.add("tiny-f32.gguf")
    proc = pull(hub, "hf:acme/tiny-GGUF/tiny-f32.gguf")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "gives tiny-f32.gguf a name, size or hash that is not one" in proc.stderr
    cache = Path(hub.env["HF_HUB_CACHE"])
    assert not [p for p in cache.rglob("*.gguf")]


def test_what_is_pulled_here_is_read_by_huggingface_hub_and_transformers_offline(hub):
    """The cache keeps the Hugging Face layout: the ecosystem's own clients find the files."""
    import transformers
    from huggingface_hub import hf_hub_download, scan_cache_dir

    from tokenscope.lm import hub as hub_module

    folder = hub_module.pull(f"hf:{PYTHIA}@step1000")
    cache = hub.env["HF_HUB_CACHE"]
    found = hf_hub_download(PYTHIA, "config.json", revision="step1000", cache_dir=cache,
                            local_files_only=True)  # fmt: skip
    assert Path(found) == folder / "config.json"
    config = transformers.AutoConfig.from_pretrained(
        PYTHIA, revision="step1000", cache_dir=cache, local_files_only=True
    )
    assert config.model_type == "gpt_neox"
    repos = {r.repo_id: r for r in scan_cache_dir(cache).repos}
    assert "step1000" in {ref for rev in repos[PYTHIA].revisions for ref in rev.refs}


def test_a_familys_training_checkpoints_are_pulled_one_after_another_and_measured(
    hub, pythia, tmp_path
):
    """`tokenscope scale --icl --hub-checkpoints REPO`: the stepN revisions, spread on a log
    scale, downloaded in turn with progress, each measured as itself."""
    from tokenscope.lm import icl
    from tokenscope.lm.hub import training_checkpoints

    for step in ("step10000", "step200", "step3000"):
        hub.add_folder(PYTHIA, step, pythia["main" if step != "step200" else "step1000"][0])
    assert training_checkpoints(PYTHIA) == ["step200", "step1000", "step3000", "step10000"]
    assert training_checkpoints(PYTHIA, 2) == ["step200", "step10000"]
    assert training_checkpoints(PYTHIA, 3) == ["step200", "step1000", "step10000"]
    text = tmp_path / "text.txt"
    text.write_text("The capital of Indonesia is Jakarta. The capital of France is Paris. " * 40)
    proc = subprocess.run(
        [sys.executable, "-m", "tokenscope", "scale", "--icl", "--text", str(text),
         "--hub-checkpoints", PYTHIA, "--count", "3", "--json"],
        capture_output=True, text=True, timeout=300, env={**os.environ, **hub.env},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    from tokenscope.lm.hub import cached_path

    for step in ("step200", "step1000", "step10000"):  # each revision in the cache now
        assert cached_path(f"hf:{PYTHIA}@{step}") is not None, step
    assert cached_path(f"hf:{PYTHIA}@step3000") is None  # not chosen, not fetched
    rows = json.loads(proc.stdout)["models"]
    assert [r["name"] for r in rows] == [f"{PYTHIA}@{s}" for s in ("step200", "step1000",
                                                                    "step10000")]  # fmt: skip
    for row in rows:
        model = load_model(f"hf:{row['name']}")  # in the cache now, found offline
        assert row["icl_score"] == pytest.approx(icl.report(model, text.read_text()).icl_score,
                                                 rel=1e-5)  # fmt: skip
    assert rows[0]["icl_score"] != pytest.approx(rows[-1]["icl_score"])  # other weights
    none = subprocess.run([sys.executable, "-m", "tokenscope", "scale", "--icl",
                           "--hub-checkpoints", "acme/sharded"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **hub.env})  # fmt: skip
    assert none.returncode != 0 and "publishes no stepN revisions" in none.stderr
