"""A model on a server in the real window: llama.cpp's own server (xllamacpp) on SmolLM2, and a
small local server for keys and faults. Connecting, the chart with the unlisted tokens as one
grey bar, generation with branching and Step, Stop, a cut stream, and a key in the keyring."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

pytestmark = pytest.mark.slow

PROMPT = "The capital of Indonesia is"


@pytest.fixture
def memory_keyring():
    """A keyring that keeps keys in this process only (never the person's own)."""
    import keyring
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):
        priority = 1

        def __init__(self) -> None:
            super().__init__()
            self.kept: dict[tuple[str, str], str] = {}

        def get_password(self, service, username):
            return self.kept.get((service, username))

        def set_password(self, service, username, password):
            self.kept[(service, username)] = password

        def delete_password(self, service, username):
            self.kept.pop((service, username), None)

    before = keyring.get_keyring()
    kept = MemoryKeyring()
    keyring.set_keyring(kept)
    yield kept
    keyring.set_keyring(before)


def _connect(qtbot, window, url, model="", key="", keep=True):
    """Connect through the real dialog (File > Connect to a server…), typed as a person would."""
    seen = {}  # (the test keeps no reference to the dialog past this function)

    def fill() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None or dialog.objectName() != "serverDialog":
            QTimer.singleShot(20, fill)
            return
        seen["dialog"] = True
        dialog.url.setCurrentText(url)
        dialog.model.setCurrentText(model)
        dialog.key.setText(key)
        dialog.keep.setChecked(keep)
        qtbot.mouseClick(dialog.connect_button, Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, fill)
    window.connect_to_server()
    assert "dialog" in seen  # (it is deleted once closed)
    window.activateWindow()  # (a desktop does this when a dialog closes; offscreen Qt does not)
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)


def _on_server(window) -> bool:
    return window.model_info is not None and not window.model_info.capabilities.internals


def test_connecting_lists_the_servers_models_and_opens_one(qtbot, window, llama):
    from tokenscope.gui.models.server_dialog import ServerDialog

    dialog = ServerDialog(window.settings, window)
    qtbot.addWidget(dialog)
    dialog.url.setCurrentText(llama)
    qtbot.mouseClick(dialog.list_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.model.count() == 1, timeout=10_000)
    assert dialog.model.currentText().endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert dialog.status.text() == "1 model on this server"

    _connect(qtbot, window, llama, dialog.model.currentText())
    qtbot.waitUntil(lambda: _on_server(window), timeout=20_000)
    assert "llama.cpp · remote · top-100 · raw" in window.status_model.text()
    assert "135 M parameters" in window.status_model.text()
    assert not window.threads.isEnabled() and not window.weights.isEnabled()
    assert window.picker.currentText().startswith("SmolLM2-135M-Instruct.Q4_1.gguf @ 127.0.0.1:")
    assert window.settings.value("remote/recent") in ([llama], llama)
    window._save()  # (as when the window closes)
    assert window.settings.value("model/last") == window.model_info.target


def test_the_chart_shows_the_listed_tokens_and_the_rest_as_one_bar(qtbot, window, llama):
    _connect(qtbot, window, llama)
    qtbot.waitUntil(lambda: _on_server(window), timeout=20_000)
    pg = window.playground
    pg.prompt.setPlainText(PROMPT)
    qtbot.waitUntil(
        lambda: (d := pg.chart.current_data()) is not None and d.rows[0].display == "␣Jak",
        timeout=10_000,
    )
    data = pg.chart.current_data()
    assert len(data.rows) == pg.chart_k.value() and data.other > 0
    assert sum(r.probability for r in data.rows) + data.other == pytest.approx(1.0)
    bars = data.bars()
    assert bars[-1].display == "(all others)" and bars[-1].probability == data.other
    title = pg.chart.title.text()
    assert "remote · top-100 · raw" in title and "entropy ≥" in title
    assert "grey: every token without a bar (of 100 listed)" in pg.chart.note.text()
    qtbot.waitUntil(lambda: len(pg.tokens.spans) == 5, timeout=10_000)
    assert [s.display for s in pg.tokens.spans][:2] == ["The", "␣capital"]
    qtbot.waitUntil(lambda: "5 of 1,024 context tokens" in pg.context_info.text(), timeout=5_000)

    pg.watch.setText(" Jak")
    qtbot.waitUntil(lambda: "P(' Jak') = " in pg.chart.title.text(), timeout=10_000)
    pg.watch.setText(" Jakarta")  # two tokens: scored one request per token
    qtbot.waitUntil(lambda: "P(' Jakarta') = " in pg.chart.title.text(), timeout=10_000)
    assert "scores given answers" in window.status_model.text()
    # The Inside tab needs the model's own forward pass: refused with a note, not an error.
    assert not window.inside.lens.isEnabled()
    assert "Open the model locally" in window.inside.note.text()


def test_generate_branch_and_step_on_a_server(qtbot, window, llama, tmp_path):
    _connect(qtbot, window, llama)
    qtbot.waitUntil(lambda: _on_server(window), timeout=20_000)
    pg = window.playground
    pg.prompt.setPlainText(PROMPT)
    pg.sampling.temperature.setValue(0)
    pg.max_tokens.setValue(5)
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled(), timeout=10_000)
    qtbot.mouseClick(pg.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled() and bool(pg.branches), timeout=20_000)
    first = list(pg.branches[0].steps)
    assert len(first) == 5 and "".join(s.text for s in first).startswith(" Jakarta")

    pg.select_token(0)  # the captured distribution, with the rest as one bar
    data = pg.chart.current_data()
    assert data.title.startswith("token 1 '␣Jak' (captured") and data.other is not None
    assert pg.alternatives.count() == 20 and "(chosen)" in pg.alternatives.item(0).text()
    pg.alternatives.setCurrentRow(1)
    alternative = first[0].top_raw[1]
    qtbot.mouseClick(pg.branch_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled() and pg.current == 1, timeout=20_000)
    second = pg.branches[1].steps
    assert second[0].text == alternative.text and len(second) == 5

    # Step continues the current branch from its text: one more token, the same branch.
    qtbot.mouseClick(pg.step_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled() and len(second) == 6, timeout=20_000)
    assert len(pg.branches) == 2

    path = tmp_path / "remote-session.json"
    pg.save_session(path)
    kept, shown = [list(b.steps) for b in pg.branches], pg.branches
    with qtbot.waitSignal(pg.session_opened, timeout=30_000):
        pg.open_session(path)
    assert pg.branches is not shown  # read from the file
    assert [list(b.steps) for b in pg.branches] == kept  # the alternatives' texts included


def test_stop_ends_a_generation_on_a_server_and_keeps_its_tokens(qtbot, window, llama):
    _connect(qtbot, window, llama)
    qtbot.waitUntil(lambda: _on_server(window), timeout=20_000)
    pg = window.playground
    pg.prompt.setPlainText("Once upon a time")
    pg.max_tokens.setValue(900)
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled(), timeout=10_000)
    pg.generate()
    qtbot.waitUntil(lambda: len(pg.branches[0].steps) >= 3, timeout=20_000)
    qtbot.keyClick(pg.prompt, Qt.Key.Key_Escape)  # (where the person typed the prompt)
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled(), timeout=5_000)
    n = len(pg.branches[0].steps)
    assert 3 <= n < 900
    qtbot.wait(300)  # (an absence has no signal to wait for: give a late token time to show)
    assert len(pg.branches[0].steps) == n  # nothing arrives after Stop


def test_a_cut_stream_keeps_its_tokens_and_says_so(qtbot, window, faulty):
    _connect(qtbot, window, faulty.url)
    qtbot.waitUntil(lambda: _on_server(window), timeout=20_000)
    pg = window.playground
    messages = []
    pg.message.connect(messages.append)
    faulty.mode = "cut"
    pg.generate()
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled() and bool(messages), timeout=10_000)
    assert [s.text for s in pg.branches[0].steps] == [" a", " b"]
    assert "the stream after 2 tokens" in messages[-1]
    assert "the tokens that arrived are kept" in messages[-1]


def test_a_typed_key_is_kept_in_the_keyring_never_in_the_settings(
    qtbot, window, faulty, memory_keyring
):
    faulty.key = "sk-typed-secret"
    _connect(qtbot, window, faulty.url)  # no key yet: refused, and the message says what to do
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=10_000)
    assert "401" in window.banner.text() and "TOKENSCOPE_API_KEY" in window.banner.text()
    assert "Connect to a server" in window.banner.text()
    assert window.model_info is not None and window.model_info.capabilities.internals  # stays

    _connect(qtbot, window, faulty.url, key="sk-typed-secret")
    qtbot.waitUntil(lambda: _on_server(window), timeout=20_000)
    root = faulty.url.removesuffix("/v1")
    assert memory_keyring.kept == {("tokenscope", root): "sk-typed-secret"}
    window.settings.sync()
    with open(window.settings.fileName(), "rb") as f:
        assert b"sk-typed-secret" not in f.read()

    # Opened again later (the picker, or the next start): the key comes from the keyring.
    faulty.seen_keys.clear()
    target = window.model_info.target
    window.load_model("builtin")
    qtbot.waitUntil(lambda: window.model_id == "builtin", timeout=30_000)
    window.load_model(target)
    qtbot.waitUntil(lambda: _on_server(window), timeout=20_000)
    assert set(faulty.seen_keys) == {"Bearer sk-typed-secret"}


def test_without_a_keyring_the_dialog_says_to_use_the_environment(
    qtbot, window, faulty, monkeypatch
):
    import keyring
    from keyring.backends import fail

    from tokenscope.gui.models.server_dialog import ServerDialog

    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        dialog = ServerDialog(window.settings, window)
        qtbot.addWidget(dialog)
        dialog.url.setCurrentText(faulty.url)
        dialog.key.setText("sk-x")
        dialog.accept()
        assert not dialog.result()  # still open
        assert "could not be kept in a system keyring" in dialog.status.text()
        assert "TOKENSCOPE_API_KEY" in dialog.status.text()
        dialog.keep.setChecked(False)
        dialog.accept()
        assert dialog.result() and dialog.api_key() == "sk-x"  # for this session only
    finally:
        keyring.set_keyring(before)


def test_the_dialog_finds_a_server_running_here_and_offers_tokenscope_serves_port(
    qtbot, window, llama, monkeypatch
):
    from tokenscope.gui.models.server_dialog import DEFAULT_URL, ServerDialog
    from tokenscope.lm.remote import discover

    assert DEFAULT_URL == "http://127.0.0.1:8000/v1"  # where `tokenscope serve` listens
    port = int(llama.rsplit(":", 1)[1].split("/")[0])
    monkeypatch.setattr(discover, "USUAL_PORTS", ((port, "llama.cpp"),))
    dialog = ServerDialog(window.settings, window)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Running on this machine"),
                    timeout=10_000)  # fmt: skip
    assert f"llama.cpp at {llama}" in dialog.status.text()
    assert dialog.address() == llama  # nothing chosen before: the server found is offered
