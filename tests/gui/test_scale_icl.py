"""The Scale tab's in-context learning mode on the real window over real tiny models: the
table and the size chart hold each model's own ICL report (tokenscope.lm.icl.report), a run
gives the score at each checkpoint against training tokens, and a Hub model family's training
checkpoints are listed, downloaded and measured against the loopback Hub."""

from __future__ import annotations

import math

import pytest
import torch
from PySide6.QtCore import Qt

import tokenscope
from tokenscope.lm.icl import report
from tokenscope.train import induction_corpus
from tokenscope.train.icl_texts import icl_text

from ..lm.formats.hub_server import HubServer
from .test_scale_tab import _train_tiny_run

REPO = "EleutherAI/pythia-tiny"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def bigger_checkpoint(tmp_path, make_model):
    from tokenscope.lm import preset

    layers = preset("tiny", vocab_size=300).n_layer + 1
    return make_model("tiny", seed=7, n_layer=layers).save(tmp_path / "bigger-checkpoint")


def _icl_tab(qtbot, window, *targets):
    tab = window.scale
    window.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: tab.models.count() > 0)
    for i in range(tab.models.count()):
        tab.models.item(i).setCheckState(Qt.CheckState.Unchecked)
    for t in targets:
        tab.add_target(str(t))
    tab.icl.radio.setChecked(True)
    return tab


def _run(qtbot, tab, timeout=120_000):
    tab.run()
    assert tab.running and not tab.run_button.isEnabled()
    qtbot.waitUntil(lambda: not tab.running, timeout=timeout)


def _table(tab):
    return [
        [tab.table.item(i, j).text() for j in range(tab.table.columnCount())]
        for i in range(tab.table.rowCount())
    ]


def _check_row(row, r, parameters):
    assert row[1] == f"{parameters:,}"
    assert float(row[2]) == pytest.approx(r.icl_score, abs=1e-4)
    assert row[3] == f"layer {r.strongest_head[0]}, head {r.strongest_head[1]}"
    assert float(row[4]) == pytest.approx(r.heads.induction_max, abs=1e-3)
    assert float(row[5]) == pytest.approx(r.icl_without_strongest, abs=1e-4)


def test_icl_mode_shows_each_models_own_report(qtbot, window, checkpoint, bigger_checkpoint):
    tab = _icl_tab(qtbot, window, checkpoint, bigger_checkpoint)
    # The mode's own charts and table replace the probe's.
    assert tab.charts.currentWidget() is tab.icl.size_chart
    assert not tab.charts.isTabVisible(tab.charts.indexOf(tab.size_chart))
    _run(qtbot, tab)
    assert tab.status.text().startswith("2 model(s) measured"), tab.status.text()
    headers = [tab.table.horizontalHeaderItem(j).text() for j in range(tab.table.columnCount())]
    assert headers == ["model", "parameters", "ICL score", "strongest induction head",
                       "its score", "ICL score without it"]  # fmt: skip
    text = icl_text("shakespeare")[0]  # the default: natural prose
    models = sorted((tokenscope.load_model(str(c)) for c in (checkpoint, bigger_checkpoint)),
                    key=lambda m: m.parameter_count)  # fmt: skip
    assert models[0].parameter_count < models[1].parameter_count
    reports = [report(m, text) for m in models]
    choice = tab.icl.text_choice
    assert [choice.itemData(i) for i in range(2)] == ["", "induction"]
    choice.setCurrentIndex(1)
    assert tab.icl.text() == induction_corpus.held_out()
    choice.setCurrentIndex(0)
    rows = _table(tab)
    assert len(rows) == 2
    for row, r, m in zip(rows, reports, models, strict=True):
        _check_row(row, r, m.parameter_count)
    data = tab.icl.size_chart.data()
    for (_name, x, y), r, m in zip(data, reports, models, strict=True):
        assert x == pytest.approx(math.log10(m.parameter_count))
        assert y == pytest.approx(r.icl_score, abs=1e-5)
    # Measured again: from the cache, the same numbers.
    _run(qtbot, tab)
    assert "(2 from the cache)" in tab.status.text()
    assert [r[2] for r in _table(tab)] == [r[2] for r in rows]


def test_icl_on_a_text_file_and_bad_files_are_named(qtbot, window, checkpoint, tmp_path):
    tab = _icl_tab(qtbot, window, checkpoint)
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "binary.bin").write_bytes(b"\x00\x01\x02" * 100)
    for name, words in (("empty.txt", "has no text"), ("binary.bin", "binary")):
        tab.icl.open_text(str(tmp_path / name))
        qtbot.waitUntil(lambda w=words: w in tab.icl.message.text())
        assert tab.icl.text_choice.currentData() == ""  # still the default text
    own = "one two three four five six seven eight nine ten. " * 40
    (tmp_path / "mine.txt").write_text(own)
    tab.icl.open_text(str(tmp_path / "mine.txt"))
    qtbot.waitUntil(lambda: tab.icl.text_choice.currentText() == "mine.txt")
    assert tab.icl.text() == own
    _run(qtbot, tab)
    r = report(tokenscope.load_model(str(checkpoint)), own)
    [row] = _table(tab)
    assert float(row[2]) == pytest.approx(r.icl_score, abs=1e-4)


def test_a_run_gives_the_icl_score_at_each_checkpoint(qtbot, window, tmp_path):
    run = _train_tiny_run(tmp_path)
    tab = _icl_tab(qtbot, window, run)
    _run(qtbot, tab)
    [(_name, tokens, scores)] = tab.icl.training_chart.data()
    checkpoints = sorted((run / "checkpoints").glob("step-*"))
    assert len(tokens) == len(checkpoints) >= 2
    steps = [int(f.name.split("-")[1]) for f in checkpoints]
    assert tokens == [step * 8 * 32 for step in steps]  # steps x batch x context
    text = icl_text("shakespeare")[0]  # the default: natural prose
    for folder, score in zip(checkpoints, scores, strict=True):
        expected = report(tokenscope.load_model(str(folder)), text).icl_score
        assert score == pytest.approx(expected, abs=1e-4)
    tab.charts.setCurrentWidget(tab.icl.training_chart)
    tab.export(tmp_path / "curve.csv")
    assert (tmp_path / "curve.csv").read_text().startswith("run,parameters,training tokens")


def _pythia(vocab: int, seed: int):
    import transformers

    torch.manual_seed(seed)
    config = transformers.GPTNeoXConfig(
        vocab_size=vocab, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=128, rotary_pct=0.25,
    )  # fmt: skip
    model = transformers.GPTNeoXForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.fixture
def hub(tmp_path, monkeypatch, bpe_tokenizer):
    """The loopback Hub with three training checkpoints of a tiny Pythia-shaped model, and
    this process pointed at it and at a fresh cache."""
    from huggingface_hub import constants

    with HubServer() as server:
        for revision, seed in (("step0", 1), ("step1000", 2), ("step143000", 3), ("main", 3)):
            folder = tmp_path / f"pythia-{revision}"
            _pythia(bpe_tokenizer.vocab_size, seed).save_pretrained(folder)
            bpe_tokenizer.save(folder / "tokenizer.json")
            server.add_folder(REPO, revision, folder)
        cache = tmp_path / "hf-cache"
        env = {"HF_ENDPOINT": server.url, "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path),
               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"}  # fmt: skip
        for key, value in env.items():
            monkeypatch.setenv(key, value)
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


def test_hub_checkpoints_are_listed_downloaded_and_measured(qtbot, window, hub):
    tab = _icl_tab(qtbot, window)
    dialog = tab.icl.open_hub_dialog()
    assert dialog.count.value() == 6
    # A repository that is not there: said plainly, nothing to add.
    dialog.repo.setText("acme/nothing-here")
    qtbot.mouseClick(dialog.list_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Could not list acme/nothing-here" in dialog.message.text(),
                    timeout=30_000)  # fmt: skip
    assert not dialog.add_button.isEnabled()
    dialog.repo.setText(REPO)
    qtbot.mouseClick(dialog.list_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.add_button.isEnabled(), timeout=30_000)
    assert "3 training checkpoints" in dialog.message.text()
    assert dialog.chosen() == [f"hf:{REPO}@{s}" for s in ("step0", "step1000", "step143000")]
    dialog.count.setValue(2)  # the first and the last
    assert [dialog.choice.item(i).text() for i in range(dialog.choice.count())] == [
        f"hf:{REPO}@step0", f"hf:{REPO}@step143000"
    ]  # fmt: skip
    qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    refs = [f"hf:{REPO}@step0", f"hf:{REPO}@step143000"]
    assert tab.targets() == refs
    assert tab.job().pull
    labels: list[str] = []
    shown = tab._on_record  # (what the progress bar says after each record, watched)

    def watch(record):
        shown(record)
        labels.append(tab.progress.format())

    tab._on_record = watch
    _run(qtbot, tab)
    assert tab.status.text().startswith("2 model(s) measured"), (tab.status.text(), _table(tab))
    assert any(f"downloading hf:{REPO}@step0" in x and " MB" in x for x in labels), labels
    from tokenscope.lm import hub as hub_module

    text = icl_text("shakespeare")[0]  # the default: natural prose
    rows = _table(tab)
    scores = []
    for ref, row in zip(refs, rows, strict=True):
        assert row[0] == ref.removeprefix("hf:")
        model = tokenscope.load_model(str(hub_module.cached_path(ref)))
        r = report(model, text)
        _check_row(row, r, model.parameter_count)
        scores.append(r.icl_score)
    # Pythia's checkpoints on the training chart: 1,024 x 2,048 tokens a step (step 0 has
    # no place on a log axis).
    [(name, tokens, ys)] = tab.icl.training_chart.data()
    assert name == REPO and tokens == [143000 * 1024 * 2048]
    assert ys == pytest.approx(scores[1:], abs=1e-5)


def test_the_tab_remembers_the_icl_mode(qtbot, make_window, checkpoint):
    window = make_window(checkpoint)
    window.scale.icl.radio.setChecked(True)
    values = window.scale.settings_values()
    assert values["mode"] == "icl"
    window.scale.mode_task.setChecked(True)
    window.scale.restore_settings(values)
    assert window.scale.icl.radio.isChecked()
    assert not window.scale.task.isEnabled() and window.scale.icl.text_choice.isEnabled()


def test_ctrl_enter_runs_and_escape_cancels_in_icl_mode(qtbot, window, checkpoint, tmp_path):
    copies = []
    for n in range(6):  # several models, measured anew: time enough to cancel
        folder = tmp_path / f"copy-{n}"
        folder.mkdir()
        for f in checkpoint.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        copies.append(folder)
    tab = _icl_tab(qtbot, window, *copies)
    tab.fresh.setChecked(True)
    tab.icl.text_choice.setFocus()
    qtbot.keyClick(tab.icl.text_choice, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert tab.running
    started = lambda: tab.progress.maximum() > 0 and tab.progress.value() >= 1  # noqa: E731
    qtbot.waitUntil(started, timeout=20_000)
    qtbot.keyClick(tab.icl.text_choice, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not tab.running, timeout=20_000)
    assert tab.status.text().startswith("Cancelled after"), tab.status.text()
    assert len(tab.results) < len(copies)
    assert tab.run_button.isEnabled() and not tab.cancel_button.isEnabled()
