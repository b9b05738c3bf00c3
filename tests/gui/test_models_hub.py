"""The Models tab's Hub search and download, against the loopback Hub (the real client in a
real child process), and the terms of use shown before a known model installs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from ..lm.formats.hub_server import HubServer

REPO = "EleutherAI/pythia-tiny"


@pytest.fixture
def hub(tmp_path, monkeypatch, bpe_tokenizer):
    import transformers
    from huggingface_hub import constants

    torch.manual_seed(0)
    config = transformers.GPTNeoXConfig(
        vocab_size=bpe_tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    folder = tmp_path / "pythia"
    transformers.GPTNeoXForCausalLM(config).save_pretrained(folder)
    bpe_tokenizer.save(folder / "tokenizer.json")
    with HubServer() as server:
        server.add_folder(REPO, "step3000", folder, tags=["license:apache-2.0"],
                          parameters=30_000)  # fmt: skip
        server.add_folder(REPO, "main", folder)
        server.add_folder(REPO, "step300", folder)
        server.add("acme/big-GGUF", "main", {"big.gguf": bytes(40 * 1024 * 1024)})
        cache = tmp_path / "hf-cache"
        for key, value in {
            "HF_ENDPOINT": server.url,
            "HF_HUB_CACHE": str(cache),
            "HF_HOME": str(tmp_path),
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }.items():
            monkeypatch.setenv(key, value)  # fmt: skip
        for key in ("HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE",
            server.url + "/{repo_id}/resolve/{revision}/{filename}",
        )  # fmt: skip
        yield server


def _search(qtbot, panel, words):
    panel.query.setText(words)
    qtbot.mouseClick(panel.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.search_button.isEnabled() and bool(panel.results), timeout=30_000)


def test_a_hub_model_is_found_downloaded_at_a_revision_listed_and_opened(qtbot, window, hub):
    tab = window.models
    window.tabs.setCurrentWidget(tab)
    panel = tab.hub
    _search(qtbot, panel, "pythia")
    assert panel.table.rowCount() == 1
    assert panel.table.item(0, 0).text() == REPO
    assert panel.table.item(0, 4).text() == "apache-2.0"
    panel.table.selectRow(0)
    # Its revisions, main first, then as numbers (Pythia's checkpoints are branches).
    qtbot.waitUntil(lambda: panel.revision.count() == 3, timeout=30_000)
    assert [panel.revision.itemText(i) for i in range(3)] == ["main", "step300", "step3000"]
    qtbot.waitUntil(lambda: panel.choice.count() == 1, timeout=30_000)
    assert panel.choice.currentData() == f"hf:{REPO}"
    panel.revision.setCurrentIndex(2)
    panel.revision.activated.emit(2)
    qtbot.waitUntil(lambda: panel.choice.currentData() == f"hf:{REPO}@step3000", timeout=30_000)
    assert panel.choice.count() == 1
    assert panel.choice.currentText().startswith("safetensors folder (")
    qtbot.mouseClick(panel.download_button, Qt.MouseButton.LeftButton)
    assert panel.progress.isVisible() and panel.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not panel.pull.running, timeout=120_000)
    assert "is downloaded" in panel.status.text(), panel.status.text()
    name = f"hf:{REPO}@step3000"
    qtbot.waitUntil(lambda: any(e.name == name for e in tab.entries), timeout=30_000)
    row = next(i for i, e in enumerate(tab.entries) if e.name == name)
    assert tab.table.item(row, 1).text() == "Hub cache"
    assert tab.table.item(row, 2).text() == "gpt_neox"
    tab.table.selectRow(row)
    assert tab.delete_button.isEnabled() and not tab.forget_button.isEnabled()
    qtbot.mouseClick(tab.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: window.model_info is not None and window.model_info.target == name,
        timeout=30_000,
    )
    assert window.model_info.architecture == "gpt_neox"


def test_a_download_shows_its_speed_and_can_be_cancelled(qtbot, window, hub):
    panel = window.models.hub
    window.tabs.setCurrentWidget(window.models)
    hub.throttle = 2 * 1024 * 1024  # bytes a second, so that there is time to cancel
    _search(qtbot, panel, "big")
    panel.table.selectRow(0)
    qtbot.waitUntil(lambda: panel.choice.count() == 1, timeout=30_000)
    qtbot.mouseClick(panel.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "/s, " in panel.status.text(), timeout=60_000)
    status = panel.status.text()
    assert status.startswith("big.gguf: ") and " of 41.9 MB, " in status and "left" in status
    assert panel.progress.maximum() == 1000
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.pull.running, timeout=30_000)
    assert "cancelled" in panel.status.text() and "Download again to resume" in (
        panel.status.text()
    )
    assert panel.download_button.isEnabled() and not panel.progress.isVisible()
    # What came before the cancel is kept for the next download to continue from.
    from huggingface_hub import constants

    kept = [p for p in Path(constants.HF_HUB_CACHE).rglob("*.tokenscope-partial")]
    assert kept and kept[0].stat().st_size > 0


def test_a_model_with_terms_of_use_shows_them_before_installing(qtbot, window, monkeypatch):
    tab = window.models
    shown = []

    def refuse(box):
        shown.append(box.text())
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "exec", refuse)
    qtbot.waitUntil(lambda: any(e.name == "gemma3-270m" for e in tab.entries), timeout=60_000)
    row = next(i for i, e in enumerate(tab.entries) if e.name == "gemma3-270m")
    assert tab.table.item(row, 7).text() == "the Gemma Terms of Use"
    tab.table.selectRow(row)
    qtbot.mouseClick(tab.install_button, Qt.MouseButton.LeftButton)
    assert shown and "Gemma Terms of Use" in shown[0] and "ai.google.dev/gemma/terms" in shown[0]
    assert not tab.pull.running  # refused: nothing was installed


def test_training_runs_are_listed_with_their_checkpoint_and_open(qtbot, window, tiny_model):
    from tokenscope.train.run_folder import STATE_FILE, step_folder
    from tokenscope.train.runs import runs_root

    step = step_folder(runs_root() / "my-first-run", 300)
    tiny_model.save(step)
    (step / STATE_FILE).write_text("{}")
    tab = window.models
    tab.refresh()
    name = "my-first-run (step-000300)"
    qtbot.waitUntil(lambda: any(e.name == name for e in tab.entries), timeout=30_000)
    row = next(i for i, e in enumerate(tab.entries) if e.name == name)
    assert tab.table.item(row, 1).text() == "training run"
    assert tab.table.item(row, 3).text() == f"{tiny_model.config.parameter_count() / 1e6:,.1f} M"
    tab.table.selectRow(row)
    assert tab.open_button.isEnabled() and not tab.delete_button.isEnabled()  # (Training tab)
    qtbot.mouseClick(tab.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: window.model_info is not None and window.model_info.source == str(step),
        timeout=30_000,
    )
