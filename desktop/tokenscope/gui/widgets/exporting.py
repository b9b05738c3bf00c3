"""Export a view: the picture as PNG or SVG, or its numbers as CSV (the Inside and Scale
tabs' Export… buttons)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, QRectF, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QFileDialog, QGraphicsView, QPushButton, QWidget

from tokenscope.files import atomic_write_text


def export_widget(widget: QWidget, path: str | Path) -> None:
    """The widget as drawn, to PNG or SVG (by the suffix)."""
    if str(path).lower().endswith(".svg"):
        from PySide6.QtSvg import QSvgGenerator

        generator = QSvgGenerator()
        generator.setFileName(str(path))
        generator.setSize(widget.size())
        generator.setViewBox(QRectF(0, 0, widget.width(), widget.height()))
        painter = QPainter(generator)
        try:
            if isinstance(widget, QGraphicsView):  # (a plot: its scene, drawn into the page)
                widget.render(painter, QRectF(0, 0, widget.width(), widget.height()))
            else:
                widget.render(painter, QPoint(0, 0))
        finally:
            painter.end()
    elif not widget.grab().save(str(path)):
        raise OSError(f"could not write {path}")


class Exportable(QWidget):
    """A view with an Export… button: PNG, SVG or CSV."""

    message = Signal(str)

    def _export_button(self, name: str) -> QPushButton:
        button = QPushButton("Export…", objectName=f"{name}ExportButton")
        button.setToolTip("Save this view as PNG or SVG, or its numbers as CSV")
        button.clicked.connect(self._export_dialog)
        return button

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export", str(Path.home()), "PNG (*.png);;SVG (*.svg);;CSV (*.csv)"
        )
        if path:
            try:
                self.export(path)
            except OSError as e:
                self.message.emit(f"Could not export: {e}")

    def export(self, path: str | Path) -> None:
        if str(path).lower().endswith(".csv"):
            buffer = io.StringIO(newline="")
            csv.writer(buffer).writerows(self.rows())
            atomic_write_text(path, buffer.getvalue())
        else:
            export_widget(self.picture(), path)

    def rows(self) -> list[list[Any]]:  # overridden
        return []

    def picture(self) -> QWidget:  # overridden
        return self
