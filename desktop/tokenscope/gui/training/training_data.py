"""The data and tokenizer part of the Training tab: text files and folders, what they hold,
which tokenizer to train, and how a sample sentence splits under it.

Reading a corpus (tokenscope.train.corpus) and training a preview tokenizer
(tokenscope.train.tokenizer_preview) can take seconds, so both run in the thread pool
(run_in_background); each request carries an id and a result older than the latest request is
dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from tokenscope.gui.background import run_in_background
from tokenscope.train.tokenizer_preview import PREVIEW_SAMPLE_CHARS, preview_tokens
from tokenscope.units import format_bytes

if TYPE_CHECKING:
    from tokenscope.train.corpus import CorpusSummary
    from tokenscope.train.tokenizer_preview import TokenPreview

PREVIEW_DEBOUNCE_MS = 300
DEFAULT_SENTENCE = "The capital of Indonesia is Jakarta."
# The marks token labels use for what would otherwise be invisible, explained beside them.
PIECE_NOTES = (
    ("␣", "␣ is a space"),
    ("↵", "↵ a new line"),
    ("<", "<E4> is one byte of a character"),
)
KINDS = (("Characters", "char"), ("Byte-level BPE", "bpe"), ("A model's tokenizer", "model"))
PATH_ROLE = Qt.ItemDataRole.UserRole  # a list item's whole path (its text is the name)
SAMPLE_TEXT = ("sample", "shakespeare.txt")  # in resources/: public domain (resources/README.md)
SAMPLE_TIP = "Eight of Shakespeare's works (public domain), about 0.9 MB: enough to train on"
EMPTY_HINT = "Add text files or folders (or drop them here), or use the sample text."


class TrainingData(QGroupBox):
    """Pick text files and folders (or drop them here), see the corpus summary, pick a tokenizer."""

    #: () — files or folders were added or removed; GUI thread
    corpus_changed = Signal()
    #: (estimated tokens or None) — the corpus was read again (None: no text); GUI thread
    corpus_summarized = Signal(object)
    #: (vocabulary size) — the tokenizer the run would make has this many tokens; GUI thread
    vocabulary_estimated = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Data and tokenizer", parent)
        self.setObjectName("trainingData")
        self.setAcceptDrops(True)
        self.summary: CorpusSummary | None = None  # the latest
        self.preview: list[str] = []  # labels of the sample sentence's tokens
        self.preview_vocab: int | None = None
        self._summary_id = 0
        self._preview_id = 0
        self._build()

    def _build(self) -> None:
        self.files = QListWidget(objectName="corpusFiles")
        self.files.setAccessibleName("Corpus files and folders")
        self.files.setToolTip("Text files and folders to train on; drop them here too")
        self.files.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.files.setMaximumHeight(90)
        self.add_files = QPushButton("Add files…", objectName="addFilesButton")
        self.add_folder = QPushButton("Add folder…", objectName="addFolderButton")
        self.remove = QPushButton("Remove", objectName="removeFilesButton")
        self.use_sample = QPushButton("Sample text", objectName="useSampleText")
        self.use_sample.setToolTip(SAMPLE_TIP)
        buttons = QGridLayout()  # two rows: the panel fits beside the charts at 1024 px
        for i, b in enumerate((self.add_files, self.add_folder, self.use_sample, self.remove)):
            b.setAccessibleName(b.text().rstrip("…"))
            buttons.addWidget(b, i // 2, i % 2)
        self.use_sample.setAccessibleName("Use the sample text")
        self.summary_label = QLabel(EMPTY_HINT, objectName="corpusSummary")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.kind = QComboBox(objectName="tokenizerKind")
        self.kind.setAccessibleName("Tokenizer")
        for label, value in KINDS:
            self.kind.addItem(label, value)
        self.kind.setCurrentIndex(1)
        self.vocab = QSpinBox(objectName="vocabSize", minimum=260, maximum=65536, value=2048)
        self.vocab.setSingleStep(256)
        self.vocab.setAccessibleName("BPE vocabulary size")
        self.init_from = QLineEdit("builtin", objectName="initFromControl")
        self.init_from.setAccessibleName("Model whose tokenizer (and weights) to start from")
        self.init_from.setToolTip(
            "A model name (builtin, smollm2-135m) or a checkpoint folder: the run fine-tunes it"
        )
        self.sentence = QLineEdit(DEFAULT_SENTENCE, objectName="previewSentence")
        self.sentence.setAccessibleName("Sample sentence to split into tokens")
        self.preview_label = QLabel(objectName="tokenPreview", wordWrap=True)
        self.preview_label.setTextFormat(Qt.TextFormat.PlainText)
        form = QFormLayout()
        form.addRow("Tokenizer", self.kind)
        form.addRow("Vocabulary size", self.vocab)
        form.addRow("Start from model", self.init_from)
        form.addRow("Sample sentence", self.sentence)
        form.addRow("Splits into", self.preview_label)

        layout = QVBoxLayout(self)
        layout.addWidget(self.files)
        layout.addLayout(buttons)
        layout.addWidget(self.summary_label)
        layout.addLayout(form)

        self.preview_timer = QTimer(self, singleShot=True, interval=PREVIEW_DEBOUNCE_MS)
        self.preview_timer.timeout.connect(self._on_preview_timer_timeout)
        self.add_files.clicked.connect(self._on_add_files_clicked)
        self.add_folder.clicked.connect(self._on_add_folder_clicked)
        self.use_sample.clicked.connect(self.add_sample_text)
        self.remove.clicked.connect(self._on_remove_clicked)
        self.kind.currentIndexChanged.connect(self._on_kind_changed)
        self.vocab.valueChanged.connect(self.preview_timer.start)
        self.init_from.editingFinished.connect(self.preview_timer.start)
        self.sentence.textChanged.connect(self.preview_timer.start)
        self._on_kind_changed()

    # ----- what the run uses ----------------------------------------------------------------

    def paths(self) -> list[str]:
        """The files and folders in the list, in order."""
        return [self.files.item(i).data(PATH_ROLE) for i in range(self.files.count())]

    def tokenizer_kind(self) -> str:
        """char, bpe or model (the TrainConfig's tokenizer field)."""
        return str(self.kind.currentData())

    def estimated_vocabulary(self) -> int:
        """The vocabulary size the model will be built for (best guess before the run)."""
        if self.tokenizer_kind() == "bpe":
            # A small corpus supports fewer merges than asked for; the preview knows when it
            # saw the whole corpus.
            small = (
                self.preview_vocab is not None
                and self.summary is not None
                and (self.summary.characters <= PREVIEW_SAMPLE_CHARS)
            )
            if small and self.preview_vocab is not None:
                return min(self.vocab.value(), self.preview_vocab)
            return self.vocab.value()
        return self.preview_vocab or 256

    def add_paths(self, paths: list[str]) -> None:
        """Add files or folders (duplicates are ignored), then read the corpus again."""
        from tokenscope.files import resource_path

        known = set(self.paths())
        sample = str(resource_path(*SAMPLE_TEXT))
        for p in paths:
            if p and p not in known:
                # The name first (a long path would be cut off in a narrow column); the whole
                # path in the tooltip.
                name = Path(p).name or p
                item = QListWidgetItem(f"{name} (the sample text)" if p == sample else name)
                item.setData(PATH_ROLE, p)
                item.setToolTip(p)
                self.files.addItem(item)
                known.add(p)
        self.refresh()

    def add_sample_text(self) -> None:
        """Add the bundled sample text (Shakespeare, public domain) to the list."""
        from tokenscope.files import resource_path

        self.add_paths([str(resource_path(*SAMPLE_TEXT))])

    def refresh(self) -> None:
        """Read the corpus again in the background, then redo the tokenizer preview."""
        from tokenscope.train.corpus import summarize

        self._summary_id += 1
        request, paths = self._summary_id, self.paths()
        self.corpus_changed.emit()
        if not paths:
            self.summary = None
            self.summary_label.setText(EMPTY_HINT)
            self.corpus_summarized.emit(None)
            self.preview_timer.start()
            return
        self.summary_label.setText("Reading the corpus…")
        run_in_background(
            lambda: summarize(paths),
            lambda result, error: self._on_corpus_read(request, result, error),
            self,
        )

    # ----- corpus summary -------------------------------------------------------------------

    def _on_corpus_read(
        self, request: int, summary: CorpusSummary | None, error: str | None
    ) -> None:
        if request != self._summary_id:
            return  # the list changed since: a newer summary is on its way
        self.summary = summary
        if error:
            self.summary_label.setText(f"Cannot read the corpus: {error.split(': ', 1)[-1]}")
            self.corpus_summarized.emit(None)
            self.preview_timer.start()
            return
        assert summary is not None  # no error: the corpus was read
        self.summary_label.setText(self.describe(summary))
        self.corpus_summarized.emit(self.estimated_tokens())
        self.preview_timer.start()

    def estimated_tokens(self) -> int | None:
        """Tokens the chosen text makes with the chosen tokenizer, roughly (None: no text)."""
        s = self.summary
        if s is None:
            return None
        return s.characters if self.tokenizer_kind() == "char" else s.estimated_tokens

    def describe(self, s: CorpusSummary) -> str:
        """The summary in words: files, size, characters, estimated tokens, problems found."""
        tokens = self.estimated_tokens()
        parts = [
            f"{len(s.files)} text file{'s' if len(s.files) != 1 else ''}, {format_bytes(s.bytes)}, "
            f"{s.characters:,} characters, about {tokens:,} tokens."
        ]
        if s.invalid_bytes:
            parts.append(f"Encoding: {s.invalid_bytes:,} bytes were not valid UTF-8 (replaced).")
        else:
            parts.append("Encoding: all valid UTF-8.")
        for path, reason in s.skipped[:5]:
            parts.append(f"Skipped {Path(path).name}: {reason}.")
        if len(s.skipped) > 5:
            parts.append(f"…and {len(s.skipped) - 5} more skipped.")
        if not s.files:
            parts.append("There is no text to train on.")
        return " ".join(parts)

    # ----- tokenizer preview ----------------------------------------------------------------

    def _on_kind_changed(self, _index: int = 0) -> None:
        kind = self.tokenizer_kind()
        self.vocab.setEnabled(kind == "bpe")
        self.init_from.setEnabled(kind == "model")
        if self.summary is not None:
            self.summary_label.setText(self.describe(self.summary))
            self.corpus_summarized.emit(self.estimated_tokens())
        self.preview_timer.start()

    def _on_preview_timer_timeout(self) -> None:
        self._preview_id += 1
        request = self._preview_id
        args = (
            self.paths(),
            self.tokenizer_kind(),
            self.vocab.value(),
            self.init_from.text().strip() or "builtin",
            self.sentence.text(),
        )
        if args[1] != "model" and not args[0]:
            self.preview, self.preview_vocab = [], None
            self.preview_label.setText("(add text to see how this sentence splits)")
            return
        self.preview_label.setText("(training a preview tokenizer…)")
        run_in_background(
            lambda: preview_tokens(*args),
            lambda result, error: self._on_preview_made(request, result, error),
            self,
        )

    def _on_preview_made(
        self, request: int, result: TokenPreview | None, error: str | None
    ) -> None:
        if request != self._preview_id:
            return
        if error:
            self.preview, self.preview_vocab = [], None
            self.preview_label.setText(f"(no preview: {error.split(': ', 1)[-1]})")
            return
        assert result is not None  # no error: the preview was made
        self.preview, self.preview_vocab = list(result.pieces), result.vocab_size
        marks = "".join(self.preview)
        notes = [text for mark, text in PIECE_NOTES if mark in marks]
        hint = f"; {', '.join(notes)}" if notes else ""
        self.preview_label.setText(
            " | ".join(self.preview) + f"   ({len(self.preview)} tokens; "
            f"vocabulary {self.preview_vocab:,}{hint})"
        )
        self.vocabulary_estimated.emit(self.estimated_vocabulary())

    # ----- adding files ---------------------------------------------------------------------

    def _on_add_files_clicked(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Text files to train on", "", "Text (*.txt *.md *.csv *.tsv *.json);;All (*)"
        )
        self.add_paths(files)

    def _on_add_folder_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder of text files")
        if folder:
            self.add_paths([folder])

    def _on_remove_clicked(self) -> None:
        for item in self.files.selectedItems():
            self.files.takeItem(self.files.row(item))
        self.refresh()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # Qt's name
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # Qt's name
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.add_paths(paths)
            event.acceptProposedAction()
