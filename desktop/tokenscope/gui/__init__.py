"""The desktop window (PySide6 + pyqtgraph): a client of the engine, like the command line.

Importing this package imports no torch: the model is loaded in a worker thread after the
window has appeared.
"""
