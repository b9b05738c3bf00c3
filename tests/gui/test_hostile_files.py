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
        with qtbot.waitSignal(pg.session_failed, timeout=30_000):
            window.open_session(str(path))
        assert window.banner.isVisibleTo(window), what
        assert window.banner.text().startswith("Could not open the session"), what
        assert len(window.banner.text()) < 600, what
        assert (pg.prompt.toPlainText(), list(pg.branches), pg.sampling.values()) == before, what
    # and the good file still opens
    window.hide_error()
    with qtbot.waitSignal(pg.session_opened, timeout=30_000):
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


def _long_session(path, steps: int, chars: int = 2048):
    """A session file of one branch of `steps` generated tokens of `chars` characters each
    (words and spaces, no line break: one long paragraph, the costliest to lay out)."""
    from tokenscope.gui.playground.session import Branch, write_session
    from tokenscope.lm.tokens import GenerationStep, TokenProbability

    rng = random.Random(steps)
    words = ["token", "model", "the", "probability", "of", "a", "capital", "Jakarta"]
    alternatives = tuple(TokenProbability(i, f"w{i}", f"w{i}", 0.1, 0.1) for i in range(5))
    generated = []
    for i in range(steps):
        text = " ".join(rng.choice(words) for _ in range(chars))[:chars]
        step = GenerationStep(index=i, token_id=i % 300, display=text[:12], text=text,
                              probability=rng.random(), sampled_probability=0.5,
                              top_raw=alternatives, top_sampled=alternatives, entropy=1.0,
                              elapsed=0.01)  # fmt: skip
        generated.append(step)
    fields = {"prompt": "Once upon a time", "sampling": {}, "model": "", "current": 0}
    write_session(path, fields, [Branch("Once upon a time", [1, 2], generated)])
    return path


def _open_and_watch(qtbot, window, path, steps: int) -> tuple[float, int, float]:
    """Open the session as the File menu does; return (seconds until every token is on
    screen, timer ticks while the file was read, seconds the call itself took)."""
    from time import perf_counter

    from PySide6.QtCore import QTimer

    pg = window.playground
    ticks: list[float] = []
    timer = QTimer(interval=5)
    timer.timeout.connect(lambda: ticks.append(perf_counter()))
    timer.start()
    shown = pg.branches
    start = perf_counter()
    try:
        with qtbot.waitSignal(pg.session_opened, timeout=600_000):
            window.open_session(str(path))
            returned = perf_counter() - start
            # The call came back before reading: what was shown still is, and the status bar
            # says what is going on.
            assert pg.branches is shown
            assert window.statusBar().currentMessage().startswith("Opening the session")
        assert pg.branches is not shown
        read_at = perf_counter()
        qtbot.waitUntil(lambda: pg.text.token_count() == steps, timeout=600_000)
        elapsed = perf_counter() - start
    finally:
        timer.stop()
    return elapsed, sum(1 for t in ticks if t < read_at), returned


def test_a_long_session_opens_in_time_linear_in_its_size_off_the_gui_thread(
    qtbot, window, tmp_path
):
    """2,000 tokens of 2 KB each held the window over ten minutes: each token laid the
    growing paragraph out again, quadratic (200 took 6 s here, 400 took 24 s). Now ten times
    the tokens take about ten times as long, and the file is read off the GUI thread: a timer
    there keeps firing meanwhile. (Ratios of one run, never absolute times.)"""
    small = _long_session(tmp_path / "small.json", 200)
    large = _long_session(tmp_path / "large.json", 2000)
    times = []
    for _ in range(3):  # the median: a small load is easily slowed by a busy machine
        times.append(_open_and_watch(qtbot, window, small, 200)[0])
    small_s = sorted(times)[1]
    large_s, ticks, returned = _open_and_watch(qtbot, window, large, 2000)
    assert large_s < 20 * small_s, (large_s, small_s)
    assert ticks >= 5, ticks  # the GUI thread ran while the 10 MB file was read and checked
    assert returned < large_s / 10, (returned, large_s)
    assert window.statusBar().currentMessage().startswith("Opened the session")
    assert not window.banner.isVisibleTo(window)
    assert len(window.playground.branches[0].steps) == 2000


@pytest.mark.parametrize("kind", ["fifo", "folder", "dev-zero"])
def test_a_settings_file_that_is_no_file_is_set_aside_and_the_window_starts(
    qtbot, private_home, kind
):
    """A FIFO (whose open() waits for a writer), a folder or a link to /dev/zero (which
    never ends) where the settings file belongs: the window starts with its defaults."""
    from ..special_files import replace_with

    private_home.mkdir(parents=True, exist_ok=True)
    replace_with(_settings_path(private_home), kind)
    w = _start(qtbot)
    assert w.banner.isVisibleTo(w)
    assert "settings file was damaged (it is not a regular file)" in w.banner.text()
    (aside,) = private_home.glob("settings.damaged-*")
    assert not aside.is_file()  # the thing itself, moved aside as it was
    w.close()
    assert _settings_path(private_home).is_file()  # written anew on closing


def test_a_session_path_that_is_no_file_is_one_clear_line(qtbot, window, tmp_path):
    from ..special_files import replace_with

    for kind, said in [("fifo", "a named pipe (FIFO)"), ("folder", "a folder"),
                       ("dev-zero", "a character device")]:  # fmt: skip
        path = replace_with(tmp_path / f"{kind}.json", kind)
        window.hide_error()
        with qtbot.waitSignal(window.playground.session_failed, timeout=30_000):
            window.open_session(str(path))
        text = window.banner.text()
        assert text.startswith(f"Could not open the session {path}: {path} is {said}"), text
        assert "\n" not in text and window.statusBar().currentMessage() == ""
