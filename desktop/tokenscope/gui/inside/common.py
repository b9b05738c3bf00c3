"""What the Inside tab's views share: colours for probabilities and surprisal, and export
to PNG, SVG or CSV."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, QRectF, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QFileDialog,
    QGraphicsView,
    QPushButton,
    QWidget,
)


def heat(p: float) -> QColor:
    """White for 0, deep blue for 1 (light enough for dark text up to ~0.6)."""
    p = max(0.0, min(1.0, p))
    return QColor.fromRgbF(1 - 0.75 * p, 1 - 0.55 * p, 1.0)


def surprise_color(bits: float | None) -> str:
    """Green for unsurprising tokens, through yellow, to red at 12 bits and more."""
    if bits is None:
        return "#eeeeee"
    share = max(0.0, min(1.0, bits / 12))
    return QColor.fromHslF((1 - share) * 120 / 360, 0.75, 0.82).name()


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
            with open(path, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(self.rows())
        else:
            export_widget(self.picture(), path)

    def rows(self) -> list[list[Any]]:  # overridden
        return []

    def picture(self) -> QWidget:  # overridden
        return self
