"""Entry point of the frozen (PyInstaller) app: the window, the CLI and the trainer in one file.

`tokenscope` (no arguments) opens the window; `tokenscope train ...` is the trainer, which is
how the window launches training when it runs frozen (there is no `python -m` then).
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # before anything can spawn a process
    from tokenscope.cli import main

    sys.exit(main())
