"""`python -m tokenscope.train` and `tokenscope train`: start, resume, or compare a run.

    python -m tokenscope.train --config run.json           a new run (or --resume it)
    python -m tokenscope.train --recipe default --out DIR  a shipped recipe
    python -m tokenscope.train --recipe shakespeare        the bundled sample text (eight of
                                                Shakespeare's works, public domain), ~1 M
                                                parameters, minutes on a laptop
    python -m tokenscope.train --run DIR --resume          continue a run from its folder
    python -m tokenscope.train --run DIR --baselines       n-gram and LSTM beside the run
    python -m tokenscope.train --config run.json --measure-steps 3   time a few steps
    python -m tokenscope.train --recipe default --ladder   sizes from 0.1 M to 3 M, and a fit
    torchrun --nproc-per-node 2 -m tokenscope.train ...    the same, with several processes
    python -m tokenscope.train --config run.json --print-torchrun --nnodes 2 --nproc-per-node 8
                                                the torchrun line for several machines

Progress is one JSON event per line on stdout (see tokenscope.train.events); every failure
ends in an `error` and a `done` event (a refused config also in one line on stderr).
Exit status: 0 completed or stopped, 1 the run failed, 2 the config was refused.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, help="a run config (JSON)")
    source.add_argument("--recipe", help="a recipe shipped with Tokenscope, e.g. 'default'")
    source.add_argument("--run", type=Path, help="an existing run folder (uses its run.json)")
    p.add_argument("--out", type=Path, help="the run folder (overrides the config's out_dir)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--stop-at-step", type=int, help="save and stop after this step")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="override a config field, e.g. --set steps=200 --set 'model={\"n_layer\": 2}'",
    )
    p.add_argument("--baselines", action="store_true", help="train the n-gram and LSTM baselines")
    p.add_argument(
        "--ladder",
        action="store_true",
        help="train a size ladder (4 sizes, ~0.1 M to ~3 M parameters, the same corpus and "
        "tokenizer) one after the other, then fit L(N) = a N^-alpha + c to the losses",
    )
    p.add_argument(
        "--ladder-tokens",
        type=int,
        metavar="N",
        help="training tokens per size (default: 1,000,000)",
    )
    p.add_argument(
        "--compute-optimal",
        action="store_true",
        help="with --ladder: ~20 training tokens per parameter for each size instead",
    )
    p.add_argument(
        "--measure-steps",
        type=int,
        metavar="N",
        help="time N training steps of this config's model on random tokens, print one JSON "
        "line and exit (the Training tab's estimate)",
    )
    several = p.add_argument_group("several machines")
    several.add_argument(
        "--print-torchrun",
        action="store_true",
        help="print the torchrun command that trains this config on several machines (the "
        "same line on each) and exit",
    )
    several.add_argument("--nnodes", type=int, default=2, metavar="N", help="machines (default: 2)")
    several.add_argument(
        "--nproc-per-node",
        type=int,
        default=1,
        metavar="N",
        help="processes per machine (default: 1)",
    )
    several.add_argument(
        "--rdzv-endpoint",
        default="HOST:29500",
        metavar="HOST:PORT",
        help="HOST:PORT of the machine where the others meet (default: HOST:29500)",
    )


def _load_config(args: argparse.Namespace):
    from tokenscope.train.config import TrainConfig, recipe_path

    if args.config:
        config = TrainConfig.from_file(args.config)
    elif args.recipe:
        config = TrainConfig.from_file(recipe_path(args.recipe))
        # A recipe's run goes under the current folder, never inside the installed package.
        config = config.replace(out_dir=str(Path.cwd() / "runs" / args.recipe))
    else:
        config = TrainConfig.from_file(args.run / "run.json")
        config = config.replace(out_dir=str(args.run))
    changes = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set needs KEY=VALUE (got {item!r})")
        try:
            changes[key] = json.loads(value)
        except json.JSONDecodeError:
            changes[key] = value  # a bare string
    if args.out:
        changes["out_dir"] = str(args.out)
    if changes:
        config = TrainConfig.from_dict({**config.to_dict(), **changes})
    return config


def _refuse(args: argparse.Namespace, message: str, code: int) -> int:
    """One line on stderr and, for a training run, an error and a done event on stdout (the
    window reads those); the measurement's stdout stays one measure line or nothing."""
    print(f"tokenscope train: error: {message}", file=sys.stderr)
    if not args.measure_steps and not args.print_torchrun:
        from tokenscope.train.events import DoneEvent, ErrorEvent, EventWriter

        events = EventWriter(None)
        events.emit(ErrorEvent(message=message))
        events.emit(DoneEvent(status="failed", message=message))
    return code


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 completed or stopped, 1 the run failed, 2 the config was refused."""
    from tokenscope.lm.errors import TokenscopeError

    try:
        config = _load_config(args)
        if args.measure_steps is not None and args.measure_steps < 1:
            raise ValueError(f"--measure-steps must be at least 1 (got {args.measure_steps})")
        if args.stop_at_step is not None and args.stop_at_step < 1:
            raise ValueError(f"--stop-at-step must be at least 1 (got {args.stop_at_step})")
        if args.print_torchrun:
            print(_torchrun_line(args, config))
            return 0
    except (ValueError, TypeError, TokenscopeError) as e:
        return _refuse(args, str(e), 2)
    if args.measure_steps:
        from tokenscope.train.measure import measure_run

        try:
            # The vocabulary the tokenizer would have; the window passes it with --set.
            parts = measure_run(config, config.vocab_size, args.measure_steps)
        except TokenscopeError as e:
            return _refuse(args, str(e), 1)
        print(json.dumps({"event": "measure", **parts, "threads": config.threads}))
        return 0
    if args.baselines:
        from tokenscope.train.baselines import run_baselines

        return 0 if run_baselines(config) else 1
    if args.ladder:
        return _run_ladder(args, config)
    from tokenscope.train.loop import Trainer

    status = Trainer(config, resume=args.resume, stop_at_step=args.stop_at_step).run()
    return {"completed": 0, "stopped": 0}.get(status, 1)


def _torchrun_line(args: argparse.Namespace, config) -> str:
    """The multi-node torchrun command for the config file as it is (checked first)."""
    from tokenscope.launch import multinode_command

    if not args.config:
        raise ValueError("--print-torchrun needs --config: the command names the config file")
    given = {
        "--set": args.set,
        "--out": args.out,
        "--resume": args.resume,
        "--stop-at-step": args.stop_at_step is not None,
        "--baselines": args.baselines,
        "--ladder": args.ladder,
        "--measure-steps": args.measure_steps is not None,
    }
    if others := [name for name, present in given.items() if present]:
        raise ValueError(
            "--print-torchrun prints the command for the config file as it is; leave out "
            + ", ".join(others)
        )
    if args.nnodes < 1 or args.nproc_per_node < 1:
        raise ValueError("--nnodes and --nproc-per-node must be at least 1")
    return multinode_command(
        args.config.absolute(), args.nnodes, args.nproc_per_node, args.rdzv_endpoint,
        run_id=config.name,
    )  # fmt: skip


def _run_ladder(args: argparse.Namespace, config) -> int:
    """The ladder's runs (their own events), then one `ladder` event: each size's parameters
    and final validation loss, the fit and its prediction for a size 4x the largest."""
    from tokenscope.lm.errors import TokenscopeError
    from tokenscope.train import ladder
    from tokenscope.train.events import (
        EventWriter,
        LadderEvent,
        LadderFit,
        LadderSizeResult,
        event_fields,
    )

    try:
        if args.compute_optimal and args.ladder_tokens:
            raise ValueError("give --ladder-tokens or --compute-optimal, not both")
        if args.ladder_tokens is not None and args.ladder_tokens < 1:
            raise ValueError(f"--ladder-tokens must be at least 1 (got {args.ladder_tokens})")
        tokens = None if args.compute_optimal else (args.ladder_tokens or ladder.DEFAULT_TOKENS)
        per_parameter = ladder.COMPUTE_OPTIMAL if args.compute_optimal else None
        configs = ladder.plan(config, tokens=tokens, tokens_per_parameter=per_parameter)
    except (ValueError, TokenscopeError) as e:
        return _refuse(args, str(e), 2)
    results = ladder.run_ladder(configs)
    sizes = tuple(LadderSizeResult(run_dir=r.run_dir, parameters=r.parameters, tokens=r.tokens,
                                   val_loss=r.val_loss, status=r.status)
                  for r in results)  # fmt: skip
    fit = None
    done = [r for r in results if r.status == "completed"]
    if len(done) == len(configs):
        law = ladder.fit_power_law([r.parameters for r in done], [r.val_loss for r in done])
        bigger = 4 * done[-1].parameters
        fit = LadderFit(a=law.a, alpha=law.alpha, c=law.c, rms=law.rms,
                        next_parameters=bigger, next_val_loss=law.predict(bigger))  # fmt: skip
    event = EventWriter(None).emit(LadderEvent(sizes=sizes, fit=fit))
    # Kept beside the sizes, so the window can show the ladder and its fit again.
    from tokenscope.files import atomic_write_text
    from tokenscope.train.runs import LADDER_FILE

    with contextlib.suppress(OSError):
        summary = json.dumps(event_fields(event), indent=1)
        atomic_write_text(Path(config.out_dir) / LADDER_FILE, summary)
    stopped = bool(results) and results[-1].status == "stopped"  # asked to stop: not a failure
    return 0 if len(done) == len(configs) or stopped else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tokenscope.train", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
