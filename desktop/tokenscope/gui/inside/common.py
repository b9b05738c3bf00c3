"""What the Inside tab's views share: colours for probabilities and surprisal, and export
to PNG, SVG or CSV."""

from __future__ import annotations

from PySide6.QtGui import QColor

from tokenscope.gui.widgets.exporting import Exportable, export_widget

__all__ = ["HEAT_INK", "Exportable", "export_widget", "heat", "surprise_color"]

#: text on a heat colour, on a light or a dark window alike
HEAT_INK = QColor("#111111")


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
