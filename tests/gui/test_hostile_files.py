"""The window's own files, damaged: settings, sessions, the last model, and text too long to lay
out. The window always starts, says what it set aside, and loses nothing else."""

from __future__ import annotations

import json
import random

import pytest
from PySide6.QtGui import QTextOption


def _settings_path(home):
    return home / "settings.ini"


def _saved_settings(qtbot, home):
    """A real settings file, written by a window that was closed."""
    from tokenscope.gui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.playground.sampling.set_values({"temperature": 0.7, "top_k": 5})
    w.playground.prompt.setPlainText("Once upon a time")
    w.close()
    return _settings_path(home).read_bytes()


def _start(qtbot):
    from tokenscope.gui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    return w


def _damaged_versions(good: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    text = good.decode()
    out = [(f"cut at {n}", good[:n]) for n in rng.sample(range(1, len(good)), 12)]
    for _ in range(8):
        flipped = bytearray(good)
        i = rng.randrange(len(flipped))
        flipped[i] ^= 1 << rng.randrange(8)
        out.append((f"bit flipped at {i}", bytes(flipped)))
    out += [
        ("random bytes", bytes(rng.randrange(256) for _ in range(300))),
        ("threads out of range", (text + "\n[model]\nthreads=99999999999\n").encode()),
        ("temperature NaN", text.replace('"temperature": 0.7', '"temperature": NaN').encode()),
        ("top-k huge", text.replace('"top_k": 5', '"top_k": 100000000000000000000').encode()),
        ("sampling not JSON", text.replace('"temperature"', "temperature").encode()),
        ("geometry as text", text.replace("@ByteArray(", "(").encode()),
        ("NUL bytes", good.replace(b"Once", b"On\0e")),
    ]
    return out


@pytest.mark.slow
def test_a_damaged_settings_file_is_set_aside_and_the_window_starts(qtbot, private_home):
    good = _saved_settings(qtbot, private_home)
    assert b"Once upon a time" in good and b"top_k" in good
    rng = random.Random(17)
    set_aside = 0
    for what, damaged in _damaged_versions(good, rng):
        for old in private_home.glob("settings.damaged-*"):
            old.unlink()
        _settings_path(private_home).write_bytes(damaged)
        w = _start(qtbot)  # must not raise, whatever the file holds
        asides = list(private_home.glob("settings.damaged-*"))
        if w.banner.isVisibleTo(w):
            assert "settings file was damaged" in w.banner.text(), what
            if set_aside == 0:  # the note outlives the first model's opening
                w.start()
                qtbot.waitUntil(lambda w=w: w.model_info is not None, timeout=30_000)
                assert w.banner.isVisibleTo(w), what
            assert len(asides) == 1 and asides[0].read_bytes() == damaged, what
            set_aside += 1
            # Defaults, not the damaged values
            assert w.playground.sampling.values()["top_k"] == 0, what
        else:
            assert not asides, what
        w.close()
        # The next start is clean: what the window saved is sound
        again = _start(qtbot)
        assert not again.banner.isVisibleTo(again), (what, again.banner.text())
        again.close()
    assert set_aside >= 10  # most damage is found (a cut at a line's end can leave a sound file)


def test_the_last_model_is_not_reopened_if_its_load_never_finished(qtbot, private_home, checkpoint):
    from PySide6.QtCore import QSettings

    path = str(_settings_path(private_home))
    private_home.mkdir(parents=True, exist_ok=True)
    s = QSettings(path, QSettings.Format.IniFormat)
    s.setValue("model/last", str(checkpoint))
    s.setValue("model/opening", str(checkpoint))  # as a crash or hang during its load leaves it
    s.sync()
    w = _start(qtbot)
    w.start()
    qtbot.waitUntil(lambda: w.model_info is not None, timeout=30_000)
    assert w.model_info.target == "builtin"
    assert w.banner.isVisibleTo(w)  # still there once the bundled model has opened
    assert "did not finish" in w.banner.text() and str(checkpoint) in w.banner.text()
    assert QSettings(path, QSettings.Format.IniFormat).value("model/opening") is None
    w.close()

    # A load that finished is reopened next time.
    s = QSettings(path, QSettings.Format.IniFormat)
    s.setValue("model/last", str(checkpoint))
    s.sync()
    w = _start(qtbot)
    w.start()
    qtbot.waitUntil(
        lambda: w.model_info is not None and w.model_info.target == str(checkpoint),
        timeout=30_000,
    )
    assert not w.banner.isVisibleTo(w)
    w.close()


def _session_mutations(saved: dict) -> list[tuple[str, object]]:
    def edit(fn):
        data = json.loads(json.dumps(saved))
        fn(data)
        return data

    step = ("branches", 0, "steps", 0)

    def at(data, path):
        for key in path:
            data = data[key]
        return data

    return [
        ("text is a number", edit(lambda d: at(d, step).__setitem__("text", 42))),
        ("text is null", edit(lambda d: at(d, step).__setitem__("text", None))),
        ("probability is a string", edit(lambda d: at(d, step).__setitem__("probability", "0.5"))),
        ("probability above 1", edit(lambda d: at(d, step).__setitem__("probability", 7))),
        ("token id negative", edit(lambda d: at(d, step).__setitem__("token_id", -1))),
        ("alternatives not a list", edit(lambda d: at(d, step).__setitem__("top_raw", {}))),
        ("a 1 MB token", edit(lambda d: at(d, step).__setitem__("text", "x" * 1_000_000))),
        ("branches not a list", edit(lambda d: d.__setitem__("branches", "many"))),
        ("prompt missing", edit(lambda d: d.pop("prompt"))),
        ("knob out of range", edit(lambda d: d["sampling"].__setitem__("top_k", -4))),
        ("knob a string", edit(lambda d: d["sampling"].__setitem__("temperature", "hot"))),
        ("current a string", edit(lambda d: d.__setitem__("current", "0"))),
        ("parent ahead of itself", edit(lambda d: d["branches"][0].__setitem__("parent", 5))),
        ("deep nesting", "[" * 100_000 + "]" * 100_000),
        ("not JSON", "{prompt: 1"),
        ("binary", bytes(range(256))),
        ("another format", {"format": "something-else"}),
    ]


def test_a_damaged_session_shows_the_banner_and_changes_nothing(qtbot, window, tmp_path):
    pg = window.playground
    pg.max_tokens.setValue(3)
    pg.generate()
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled() and bool(pg.branches), timeout=20_000)
    good = tmp_path / "good.json"
    pg.save_session(good)
    saved = json.loads(good.read_text())
    before = (pg.prompt.toPlainText(), list(pg.branches), pg.sampling.values())
    for what, content in _session_mutations(saved):
        path = tmp_path / "bad.json"
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            path.write_text(json.dumps(content))
        window.hide_error()
        window.open_session(str(path))
        assert window.banner.isVisibleTo(window), what
        assert window.banner.text().startswith("Could not open the session"), what
        assert len(window.banner.text()) < 600, what
        assert (pg.prompt.toPlainText(), list(pg.branches), pg.sampling.values()) == before, what
    # and the good file still opens
    window.hide_error()
    window.open_session(str(good))
    assert not window.banner.isVisibleTo(window)


@pytest.mark.slow
@pytest.mark.parametrize("length", [300_000, 1_000_000])
def test_a_long_unbroken_prompt_is_laid_out_wrapping_anywhere(qtbot, window, length):
    """Word wrapping a run with no spaces costs ~n^2 in Qt (seconds at 300 K characters)."""
    from tokenscope.gui.playground import token_view

    pg = window.playground
    pg.prompt.setPlainText("a" * length)
    assert pg.prompt.wordWrapMode() == QTextOption.WrapMode.WrapAnywhere
    qtbot.waitUntil(lambda: len(pg.tokens.spans) > 1000, timeout=30_000)
    assert pg.tokens.toPlainText().count("a") <= token_view.MAX_SHOWN * 2
    assert "not shown" in pg.tokens.toPlainText()
    pg.prompt.setPlainText("The capital of Indonesia is")  # ordinary text wraps at words again
    assert pg.prompt.wordWrapMode() == QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere


def test_a_damaged_recent_models_list_reads_as_empty_and_is_replaced(private_home, checkpoint):
    from tokenscope.lm import registry

    private_home.mkdir(parents=True, exist_ok=True)
    path = private_home / registry.RECENT_FILE
    damage = [
        b"",
        b"\xff\xfe\x00garbage",
        b"[" * 200_000,
        b'{"recent": "not a list"}',
        b'{"recent": [1, null, {"a": 1}, "' + b"x" * 5000 + b'"]}',
        b'{"recent": [' + b'"/m",' * 100_000 + b'"/m"]}',
    ]
    for content in damage:
        path.write_bytes(content)
        listed = registry.recent_models()
        assert isinstance(listed, list) and len(listed) <= registry.RECENT_LIMIT
        assert all(isinstance(p, str) and len(p) <= 4096 for p in listed)
    registry.remember(checkpoint)
    assert registry.recent_models()[0] == str(checkpoint.resolve())


def test_a_prompt_longer_than_the_settings_keep_is_cut_not_a_damaged_file(
    qtbot, private_home, monkeypatch
):
    from tokenscope.gui import main_window, settings_file

    monkeypatch.setattr(settings_file, "MAX_PROMPT_CHARS", 1000)
    monkeypatch.setattr(main_window, "MAX_PROMPT_CHARS", 1000)
    w = _start(qtbot)
    w.playground.prompt.setPlainText("word " * 1000)  # 5,000 characters
    w.close()
    again = _start(qtbot)
    assert not again.banner.isVisibleTo(again), again.banner.text()
    assert again.playground.prompt.toPlainText() == ("word " * 1000)[:1000]
    again.close()


def test_a_session_the_window_saved_opens_again(qtbot, window, tmp_path):
    """Probabilities computed in float32 may come out a hair above 1; they are the app's own."""
    from tokenscope.gui.playground.session import read_session

    pg = window.playground
    pg.sampling.set_values({"top_k": 1, "use_seed": True, "seed": 2})
    pg.max_tokens.setValue(4)
    pg.generate()
    qtbot.waitUntil(lambda: pg.generate_button.isEnabled() and bool(pg.branches), timeout=20_000)
    path = tmp_path / "s.json"
    pg.save_session(path)
    data = json.loads(path.read_text())
    data["branches"][0]["steps"][0]["sampled_probability"] = 1.0000001
    data["branches"][0]["steps"][0]["removed_mass"] = 1.0000001
    path.write_text(json.dumps(data))
    _fields, branches = read_session(path)
    assert len(branches[0].steps) == len(pg.branches[0].steps)
