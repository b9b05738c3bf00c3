"""benchmarks/gpu.py keeps working without a GPU: `--smoke` runs every part on the CPU and prints
its tables with numbers in them; without CUDA and without --smoke it says so and fails."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?(e-?\d+)?%?$")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # The installed package, as a person runs the script (a clean checkout's desktop/ folder
    # alone has no tokenscope.resources).
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=400, env=env)  # fmt: skip


def _rows(text: str, heading: str) -> list[list[str]]:
    """The body rows of the markdown table in the section that starts with `heading`."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def _is_number(cell: str) -> bool:
    return bool(NUMBER.match(cell))


@pytest.mark.slow
def test_the_smoke_run_prints_every_table_with_numbers():
    done = _run("--smoke")
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "failed" not in out, out
    assert f"torch {torch.__version__}" in out

    accuracy = _rows(out, "## a.")
    assert [r[:2] for r in accuracy] == [["builtin", "float32"], ["builtin", "bfloat16"]]
    for row in accuracy:
        assert _is_number(row[2]) and float(row[2]) < 0.05, row  # max |dP|
        assert re.fullmatch(r"\d/2", row[3]) and re.fullmatch(r"\d/2", row[4]), row
    assert float(accuracy[0][2]) < 1e-5 and accuracy[0][3:] == ["2/2", "2/2"]  # the same model

    speed = _rows(out, "## b.")
    assert [r[0] for r in speed] == ["tokenscope", "transformers eager",
                                     "transformers static cache + compile"]  # fmt: skip
    for row in speed:
        assert _is_number(row[1]) and _is_number(row[2]), row
        assert float(row[1].replace(",", "")) > 0 and float(row[2].replace(",", "")) > 0
        assert all(re.fullmatch(r"\d+\.\d\dx", cell) for cell in row[3:]), row
    assert speed[0][3:] == ["1.00x", "1.00x"]

    training = _rows(out, "## c.")
    assert [r[0] for r in training] == ["tokenscope.train (compile: true)",
                                        "plain PyTorch loop (torch.compile)",
                                        "ratio tokenscope.train / plain"]  # fmt: skip
    for row in training[:2]:
        assert _is_number(row[1]) and row[2].endswith("%") and _is_number(row[2]), row
        assert row[3] in ("yes", "no (fell back)") and _is_number(row[4]), row
    assert training[1][3] == "yes"
    assert _is_number(training[2][1]) and float(training[2][1]) > 0
    assert "vocabulary 512" in out  # the random characters made the tokenizer asked for


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_without_cuda_and_without_smoke_it_says_so_and_fails():
    done = _run()
    assert done.returncode == 2
    assert "no CUDA device is present" in done.stderr and "--smoke" in done.stderr
    assert "## a." not in done.stdout
