"""UI latency: does the window stay responsive while the model works?

    python benchmarks/ui_latency.py                       # the bundled model
    python benchmarks/ui_latency.py --model smollm2-135m  # when installed

Measures, in the real window (offscreen unless a display is set):
1. the gaps of a 5 ms QTimer on the GUI thread while generating at full speed (goal: p99 under
   20 ms, max under 50 ms): long gaps mean the GUI thread was starved;
2. keystroke-to-chart latency with a 200-token prompt: a key typed at the end of the prompt
   until the chart shows the new prediction (goal: p95 at most 100 ms);
3. the same timer's gaps while the Training tab runs the trainer (the default recipe's model
   shape on the default corpus) in its own process, for --train-seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--tokens", type=int, default=200, help="tokens generated for part 1")
    parser.add_argument("--keys", type=int, default=40, help="keystrokes for part 2")
    parser.add_argument("--train-seconds", type=float, default=20.0, help="part 3 (0: skip)")
    args = parser.parse_args()

    import tempfile

    os.environ.setdefault("TOKENSCOPE_HOME", tempfile.mkdtemp(prefix="tokenscope-bench-"))
    from PySide6.QtCore import QElapsedTimer, Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from tokenscope.gui.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    window = MainWindow()
    window.show()
    window.load_model(args.model)

    def wait(condition, timeout_s: float = 300.0) -> None:
        deadline = time.perf_counter() + timeout_s
        while not condition():
            app.processEvents()
            if time.perf_counter() > deadline:
                raise TimeoutError("the window did not answer in time")
            time.sleep(0.0005)

    wait(lambda: window.model_info is not None or window.banner.isVisible())
    if window.model_info is None:
        sys.exit(f"could not load {args.model}: {window.banner.text()}")
    pg = window.playground

    # 1. Timer gaps during generation.
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        gaps.append((now - last[0]) / 1e6)
        last[0] = now

    timer = QTimer(interval=5, timerType=Qt.TimerType.PreciseTimer)
    timer.timeout.connect(tick)

    def measure_gaps(seconds: float) -> list[float]:
        gaps.clear()
        last[0] = clock.nsecsElapsed()
        timer.start()
        wait_for(seconds)
        timer.stop()
        return list(gaps[1:])

    def wait_for(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.0005)

    pg.prompt.setPlainText("The capital of Indonesia is")
    pg.max_tokens.setValue(args.tokens)
    wait(lambda: pg.generate_button.isEnabled())
    started = time.perf_counter()
    timer.start()
    pg.generate()
    wait(lambda: pg.generate_button.isEnabled())
    timer.stop()
    seconds = time.perf_counter() - started
    produced = len(pg.branches[pg.current].steps)
    generation_gaps = list(gaps[1:])

    # 2. Keystroke to chart, at the end of a 200-token prompt.
    words = ["the", "model", "reads", "the", "prompt", "and", "predicts", "the", "next", "token"]
    text = ""
    while len(window.worker.model.encode(text)) < 200:
        text += words[len(text) % len(words)] + " "
    pg.prompt.setPlainText(text)
    cursor = pg.prompt.textCursor()
    cursor.movePosition(cursor.MoveOperation.End)
    pg.prompt.setTextCursor(cursor)
    wait(lambda: pg.chart.current_data() is not None)
    latencies: list[float] = []
    for i in range(args.keys):
        wait(lambda: not pg._debounce.isActive())
        app.processEvents()
        repaints = pg.chart.repaints
        target = pg._predict_id + 1
        t0 = time.perf_counter()
        QTest.keyClick(pg.prompt, "abcdefghij "[i % 11])
        wait(
            lambda target=target, repaints=repaints: (
                pg._predict_id >= target
                and pg._prediction is not None
                and pg.chart.repaints > repaints
                and pg._prediction_id_shown >= target
            )
        )
        latencies.append((time.perf_counter() - t0) * 1000)

    # 3. Timer gaps while training runs in its own process, started from the Training tab.
    train_gaps: list[float] = []
    if args.train_seconds > 0:
        from tokenscope.train import default_corpus

        corpus = default_corpus.write(os.path.join(os.environ["TOKENSCOPE_HOME"], "corpus.txt"))
        tab = window.training
        window.tabs.setCurrentWidget(tab)
        tab.data.add_paths([str(corpus)])
        tab.plan.preset.setCurrentIndex(tab.plan.preset.findData("small"))
        tab.plan.layers.setValue(4)
        tab.plan.heads.setValue(4)
        tab.plan.width.setValue(128)
        tab.plan.context.setValue(128)
        tab.plan.batch.setValue(32)
        tab.plan.steps.setValue(2000)  # the tab logs every steps / 500 steps
        tab.options.name.setText("ui-latency")
        wait(lambda: "characters" in tab.data.summary_label.text())
        tab.start()
        try:
            wait(lambda: len(tab.charts.curve_points("train")) >= 3, 120)
        except TimeoutError:
            print(tab.log.toPlainText()[-2000:])
            raise
        train_gaps = measure_gaps(args.train_seconds)
        tab.stop()
        wait(lambda: not tab.process.is_running())
    window.close()

    info = window.model_info
    print(
        f"model: {info.name} ({info.parameters / 1e6:.1f} M parameters), "
        f"Qt platform {app.platformName()}, {os.cpu_count()} cores\n"
    )
    print(f"| {'measure':<52} | {'value':>9} | {'goal':>9} |")
    print(f"|{'-' * 54}|{'-' * 10}:|{'-' * 10}:|")
    print(
        f"| {f'generation: {produced} tokens, tokens/s':<52} | {produced / seconds:>9.1f} | "
        f"{'':>9} |"
    )
    print(
        f"| {'5 ms timer gap while generating, p99 (ms)':<52} | "
        f"{percentile(generation_gaps, 0.99):>9.1f} | {'< 20':>9} |"
    )
    print(
        f"| {'5 ms timer gap while generating, max (ms)':<52} | "
        f"{max(generation_gaps):>9.1f} | {'< 50':>9} |"
    )
    print(
        f"| {'keystroke to chart, 200-token prompt, p50 (ms)':<52} | "
        f"{statistics.median(latencies):>9.1f} | {'':>9} |"
    )
    print(
        f"| {'keystroke to chart, 200-token prompt, p95 (ms)':<52} | "
        f"{percentile(latencies, 0.95):>9.1f} | {'<= 100':>9} |"
    )
    if train_gaps:
        print(
            f"| {'5 ms timer gap while training, p99 (ms)':<52} | "
            f"{percentile(train_gaps, 0.99):>9.1f} | {'< 20':>9} |"
        )
        print(
            f"| {'5 ms timer gap while training, max (ms)':<52} | {max(train_gaps):>9.1f} | "
            f"{'< 50':>9} |"
        )


if __name__ == "__main__":
    main()
