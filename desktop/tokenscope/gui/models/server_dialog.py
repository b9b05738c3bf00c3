"""Connect to a server: a model served by llama.cpp, vLLM, SGLang, Ollama or any
OpenAI-compatible API, opened in the window like a local one.

The person types the server's address (recent ones are offered, and servers already running
on this machine's usual ports are found by themselves), lists its models (GET /v1/models, in
the background: the window never waits on the network) and picks one.
An API key comes from the environment variable TOKENSCOPE_API_KEY, or is typed here and kept
in the system keyring; it is never written to the settings file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.background import run_in_background
from tokenscope.gui.widgets.theme import set_tone

if TYPE_CHECKING:
    from tokenscope.lm.remote.discover import FoundServer

RECENT_KEY = "remote/recent"
RECENT_MAX = 8
DEFAULT_URL = "http://127.0.0.1:8000/v1"  # where `tokenscope serve` listens


def recent_servers(settings: QSettings) -> list[str]:
    value = settings.value(RECENT_KEY, [])
    if isinstance(value, str):  # QSettings gives a lone string for a one-item list
        value = [value]
    listed = cast("Iterable[object]", value or [])  # what was stored: a list of addresses
    return [str(v) for v in listed if str(v).startswith(("http://", "https://"))]


def remember_server(settings: QSettings, url: str) -> None:
    """Put `url` first among the recent servers (addresses only: never a key)."""
    servers = [url] + [u for u in recent_servers(settings) if u != url]
    settings.setValue(RECENT_KEY, servers[:RECENT_MAX])


class ServerDialog(QDialog):
    """Asks for a server and one of its models; `target()` and `api_key()` once accepted."""

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from tokenscope.lm.remote import DEFAULT_KEY_ENV

        self.setObjectName("serverDialog")
        self.setWindowTitle("Connect to a server")
        self.settings = settings
        self.url = QComboBox(objectName="serverUrl", editable=True)
        self.url.setAccessibleName("Server address")
        self.url.addItems(recent_servers(settings) or [DEFAULT_URL])
        url_text = self.url.lineEdit()
        assert url_text is not None  # an editable combo box has one
        url_text.setPlaceholderText(DEFAULT_URL)
        self.url.setMinimumContentsLength(34)
        self.list_button = QPushButton("List models", objectName="listServerModelsButton")
        self.list_button.setToolTip("Ask the server which models it serves (GET /v1/models)")
        self.model = QComboBox(objectName="serverModel", editable=True)
        self.model.setAccessibleName("Model on the server")
        model_text = self.model.lineEdit()
        assert model_text is not None
        model_text.setPlaceholderText("the server's one model")
        self.key = QLineEdit(objectName="serverApiKey")
        self.key.setAccessibleName("API key")
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText(f"none, ${DEFAULT_KEY_ENV}, or the one kept in the keyring")
        self.keep = QCheckBox("Keep the key in the system keyring", objectName="keepApiKey")
        self.keep.setChecked(True)
        self.keep.setToolTip(
            "The key is kept by the desktop's keyring (GNOME Keyring, KWallet, macOS Keychain, "
            "Windows Credential Locker), never in Tokenscope's settings file"
        )
        self.status = QLabel(
            textFormat=Qt.TextFormat.PlainText, objectName="serverStatus", wordWrap=True
        )
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setMinimumWidth(460)
        help_text = QLabel(
            "tokenscope serve, llama.cpp (llama-server), vLLM, SGLang, Ollama or any "
            "OpenAI-compatible server. "
            "Charts show the top tokens the server returns, and the rest of the vocabulary as "
            "one grey bar.",
            wordWrap=True,
        )
        set_tone(help_text, "muted")
        url_row = QHBoxLayout()
        url_row.addWidget(self.url, 1)
        url_row.addWidget(self.list_button)
        form = QFormLayout()
        form.addRow("Address", url_row)
        form.addRow("Model", self.model)
        form.addRow("API key", self.key)
        form.addRow("", self.keep)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.connect_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.connect_button.setText("Connect")
        self.connect_button.setObjectName("connectServerButton")
        layout = QVBoxLayout(self)
        layout.addWidget(help_text)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.list_button.clicked.connect(self.list_models)
        self._asked = 0  # answers to an older "List models" are dropped
        self.found: list[FoundServer] = []
        self._look_for_local_servers()

    def _look_for_local_servers(self) -> None:
        """Servers running here on their usual ports (loopback only), in the background."""
        from tokenscope.lm.remote.discover import find_local_servers

        self.status.setText("looking for servers on this machine…")
        run_in_background(find_local_servers, self._on_found, parent=self)

    def _on_found(self, found: list[FoundServer] | None, error: str | None) -> None:
        self.found = list(found or [])
        still_looking = self.status.text().startswith("looking for")  # (not a newer message)
        if not self.found:
            if still_looking:
                self.status.setText("")
            return
        known = {self.url.itemText(i) for i in range(self.url.count())}
        for server in reversed(self.found):
            if server.url not in known:
                self.url.insertItem(0, server.url)
        if self.address() == DEFAULT_URL and not recent_servers(self.settings):
            # Nothing chosen before and nothing typed since: the first server found.
            self.url.setCurrentText(self.found[0].url)
        if not still_looking:
            return
        self.status.setText("Running on this machine: " + "; ".join(
            f"{s.kind} at {s.url} ({', '.join(s.models[:3]) or 'no model listed'})"
            for s in self.found
        ))  # fmt: skip

    def address(self) -> str:
        return self.url.currentText().strip()

    def list_models(self) -> None:
        """Fill the model list from the server, in the background."""
        from tokenscope.lm.remote import RemoteModel, is_remote

        url = self.address()
        if not is_remote(url):
            self.status.setText(
                f"{url or 'An empty address'} is not a server address ({DEFAULT_URL})"
            )
            return
        self._asked += 1
        asked, key = self._asked, self.key.text().strip() or None
        self.status.setText(f"asking {url} for its models…")
        self.list_button.setEnabled(False)
        run_in_background(
            lambda: RemoteModel.list_models(url, api_key=key),
            lambda models, error: self._on_models(asked, models, error),
            parent=self,
        )

    def _on_models(self, asked: int, models: tuple[str, ...] | None, error: str | None) -> None:
        if asked != self._asked:
            return
        self.list_button.setEnabled(True)
        if error is not None:
            self.status.setText(
                error.split(": ", 1)[-1] if error.startswith("RemoteError") else error
            )
            return
        chosen = self.model.currentText()
        self.model.clear()
        self.model.addItems(list(models or ()))
        if chosen in (models or ()):
            self.model.setCurrentText(chosen)
        n = len(models or ())
        self.status.setText(f"{n} model{'s' if n != 1 else ''} on this server")

    def target(self) -> str:
        """The model as the window opens it: "http://HOST:PORT/v1#NAME"."""
        from tokenscope.lm.remote import remote_target

        return remote_target(self.address(), self.model.currentText().strip() or None)

    def api_key(self) -> str | None:
        return self.key.text().strip() or None

    def accept(self) -> None:
        """Check the address, keep the key if asked, remember the server; then close."""
        from tokenscope.lm.remote import RemoteError, is_remote, server_root, store_key

        url = self.address()
        if not is_remote(url):
            self.status.setText(
                f"{url or 'An empty address'} is not a server address ({DEFAULT_URL})"
            )
            return
        key = self.api_key()
        if key and self.keep.isChecked():
            try:
                store_key(server_root(url), key)
            except RemoteError as e:
                self.status.setText(f"{e}. Untick 'Keep' to use the key for this session only.")
                return
        remember_server(self.settings, url)
        super().accept()
