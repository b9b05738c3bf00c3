"""Guard against the PySide6 build that corrupts reference counts: 6.12.0 on Python 3.11
drops a reference to None on void calls, and the interpreter aborts with none_dealloc."""

import sys

import PySide6
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen


def test_pyside_version_is_not_the_broken_one():
    assert PySide6.__version__ != "6.12.0"


def test_void_calls_and_emits_keep_none_and_true_alive(qapp):
    image = QImage(8, 8, QImage.Format.Format_ARGB32)
    painter = QPainter(image)

    class Emitter(QObject):
        fired = Signal(bool)

    emitter = Emitter()
    received = []
    emitter.fired.connect(received.append)
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    pen = QPen(QColor(1, 2, 3))
    for _ in range(100_000):
        painter.setPen(pen)  # a void call: returns None
    for _ in range(2_000):
        emitter.fired.emit(True)
    painter.end()
    # A broken build loses one reference per call: 100,000 fewer. Allow ordinary drift.
    assert sys.getrefcount(None) > none_before - 1000
    assert sys.getrefcount(True) > true_before - 1000
    assert len(received) == 2_000
