"""Take the README's screenshot of the real window on a virtual X screen.

    xvfb-run -s "-screen 0 1920x1080x24" python installer/screenshot.py /tmp/playground.png
    convert /tmp/playground.png -colors 256 PNG8:docs/images/playground.png

Opens the window on the bundled model, types a prompt, generates a few tokens, clicks one so
the chart shows its captured distribution, then saves an X screenshot of the whole screen
(ImageMagick's `import`, when installed) or a grab of the window.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TOKENSCOPE_HOME", tempfile.mkdtemp(prefix="tokenscope-shot-"))


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "screenshot.png"
    from PySide6.QtWidgets import QApplication

    from tokenscope.gui.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    window = MainWindow()
    window.setGeometry(0, 0, 1920, 1080)
    window.show()
    window.start()

    def wait(condition, seconds: float = 120) -> None:
        deadline = time.time() + seconds
        while not condition() and time.time() < deadline:
            app.processEvents()
            time.sleep(0.01)

    wait(lambda: window.model_info is not None)
    pg = window.playground
    pg.prompt.setPlainText("The capital of Indonesia is")
    pg.watch.setText(" Jakarta")
    pg.sampling.temperature.setValue(0.8)
    pg.sampling.top_k.setValue(5)
    wait(lambda: pg.chart.current_data() is not None)
    pg.max_tokens.setValue(40)
    pg.generate()
    wait(lambda: pg.generate_button.isEnabled())
    steps = pg.branches[pg.current].steps
    pg.select_token(max(range(len(steps)), key=lambda i: steps[i].entropy))  # the most open choice
    end = time.time() + 1.5
    while time.time() < end:
        app.processEvents()
        time.sleep(0.01)
    if shutil.which("import") and os.environ.get("DISPLAY"):
        subprocess.run(["import", "-window", "root", out], check=True)
    else:
        window.grab().save(out)
    print(f"wrote {out}")
    window.close()


if __name__ == "__main__":
    main()
