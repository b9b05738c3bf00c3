"""Training speed: Tokenscope's loop against a minimal plain PyTorch loop, and 1 vs 2 processes.

Same model (the default recipe's shape, ~1.1M parameters), same batch (32 x 128 tokens), same
AdamW, same token file, float32 on the CPU. Each measurement runs in its own fresh process,
alternating, so that machine noise hits both alike.

    python benchmarks/train.py                # 2 rounds, 60 steps each, 1 thread per process

Printed: tokens/s of `python -m tokenscope.train` (events, clipping, schedule, checkpoint at
the end; evaluation and samples switched off) and of the plain loop; then one process against
two under torchrun (each process one thread, the same global batch).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN_LOOP = r"""
import sys, time, numpy as np, torch, torch.nn.functional as F
from tokenscope.lm import Transformer, preset
run, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
cfg = preset("small", vocab_size=2048, context_length=128, d_model=128, n_head=4, n_layer=4)
model = Transformer(cfg).init_weights(seed=0).train()
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1, betas=(0.9, 0.99))
data = np.memmap(f"{run}/data/train.bin", dtype=np.uint16, mode="r")
rng = np.random.default_rng(0)
times = []
for step in range(steps):
    t = time.perf_counter()
    starts = rng.integers(0, len(data) - 129, size=32)
    rows = np.stack([np.asarray(data[s : s + 129], dtype=np.int64) for s in starts])
    x, y = torch.from_numpy(rows[:, :-1]), torch.from_numpy(rows[:, 1:])
    loss = F.cross_entropy(model(x).reshape(-1, 2048), y.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    times.append(time.perf_counter() - t)
print(32 * 128 / (sum(times[-20:]) / 20))
"""


def config(run: Path, corpus: Path, steps: int, threads: int) -> Path:
    cfg = {
        "data": [str(corpus)],
        "out_dir": str(run),
        "tokenizer": "bpe",
        "vocab_size": 2048,
        "preset": "small",
        "model": {"context_length": 128, "d_model": 128, "n_head": 4, "n_layer": 4},
        "steps": steps,
        "batch_size": 32,
        "context": 128,
        "log_every": 1,
        "eval_every": 10**9,
        "sample_every": 10**9,
        "checkpoint_every": 10**9,
        "threads": threads,
    }
    path = run.with_suffix(".json")
    path.write_text(json.dumps(cfg))
    return path


def ours(cfg: Path, world: int = 1) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if world == 1:
        cmd = [sys.executable, "-m", "tokenscope.train", "--config", str(cfg)]
    else:
        torchrun = str(Path(sys.executable).with_name("torchrun"))
        cmd = [
            torchrun,
            "--standalone",
            "--nproc-per-node",
            str(world),
            "-m",
            "tokenscope.train",
            "--config",
            str(cfg),
        ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    steps = [json.loads(x) for x in out.splitlines() if '"event": "step"' in x]
    return steps[-1]["tokens_per_s"]  # the mean over the last 20 steps


def plain(run: Path, steps: int, threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", PLAIN_LOOP, str(run), str(steps), str(threads)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from tokenscope.train import default_corpus

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = default_corpus.write(tmp / "corpus.txt")
        run = tmp / "run"
        cfg = config(run, corpus, args.steps, args.threads)
        ours(config(tmp / "prepare", corpus, 2, args.threads))  # warm file caches
        ours_rates, plain_rates, singles, pairs = [], [], [], []
        cfg1 = config(tmp / "one", corpus, args.steps, 1)
        cfg2 = config(tmp / "two", corpus, args.steps, 1)
        for i in range(args.rounds):
            started = time.perf_counter()
            # Who goes first alternates, so that drift in the machine's load hits both alike.
            if i % 2:
                plain_rates.append(plain(run, args.steps, args.threads))
                ours_rates.append(ours(cfg))
                pairs.append(ours(cfg2, world=2))
                singles.append(ours(cfg1))
            else:
                ours_rates.append(ours(cfg))
                plain_rates.append(plain(run, args.steps, args.threads))
                singles.append(ours(cfg1))
                pairs.append(ours(cfg2, world=2))
            print(f"round done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            for folder in (run, tmp / "one", tmp / "two"):
                shutil.rmtree(folder / "checkpoints", ignore_errors=True)
        one = statistics.median(ours_rates)
        one_single, two = statistics.median(singles), statistics.median(pairs)

    p = statistics.median(plain_rates)
    print(
        f"default recipe shape (1.07M parameters), batch 32 x 128, float32, CPU, "
        f"{args.threads} thread(s); median of {args.rounds} alternating rounds\n"
    )
    print(f"| {'measure':<44} | {'tokens/s':>9} |")
    print(f"|{'-' * 46}|{'-' * 10}:|")
    print(f"| {'tokenscope.train, 1 process':<44} | {one:>9.0f} |")
    print(f"| {'plain PyTorch loop, 1 process':<44} | {p:>9.0f} |")
    print(f"| {'ratio tokenscope / plain (goal >= 0.95)':<44} | {one / p:>9.2f} |")
    print(f"| {'tokenscope.train, 1 process x 1 thread':<44} | {one_single:>9.0f} |")
    print(f"| {'tokenscope.train, 2 processes x 1 thread':<44} | {two:>9.0f} |")
    print(f"| {'speed-up from the second process':<44} | {two / one_single:>9.2f} |")


if __name__ == "__main__":
    main()
