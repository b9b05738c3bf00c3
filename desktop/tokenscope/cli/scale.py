"""`tokenscope scale`: one probe, a few-shot sweep or the ICL score across models, smallest
first.

The ScaleRun job of the model service, as the Scale tab runs it: runs and ladders count as
their latest checkpoint and, with a probe, are measured at every checkpoint too; a model
that cannot be measured gets its error on its own line and the others go on.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

from tokenscope.cli.common import Session, print_json
from tokenscope.cli.fewshot import probability_text
from tokenscope.escapes import printable
from tokenscope.units import format_probability, format_rank

if TYPE_CHECKING:
    from tokenscope.lm.fewshot.prompt import FewShotPrompt
    from tokenscope.lm.scale import Probe, ScalePoint, ScaleSweep
    from tokenscope.service.records import ScaleResult
    from tokenscope.train.probe_runs import TrainingCurve


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sc = sub.add_parser(
        "scale",
        help="one probe across models: P(answer) by model size",
        description="Measure P(ANSWER | PROMPT), or a few-shot sweep, on several models (by "
        "default the bundled one and every known model installed), smallest first. Results "
        "are cached per model and probe.",
    )
    sc.add_argument("prompt", nargs="?", default="")
    sc.add_argument("answer", nargs="?", default=None, help='e.g. " Jakarta" (mind the space)')
    sc.add_argument("--model", "-m", dest="models", action="append", help="a model (repeat)")
    sc.add_argument("--fewshot", metavar="PRESET", help="a few-shot preset or JSON file: sweep")
    sc.add_argument("--max-shots", "-k", type=int, default=None)
    sc.add_argument("--icl", action="store_true",
                    help="instead: the in-context learning score (late minus early loss on "
                    "--text) and the strongest induction head of each model")  # fmt: skip
    sc.add_argument("--text", metavar="FILE", help="with --icl: a text file, or a named text: "
                    "shakespeare (the default) or induction")  # fmt: skip
    sc.add_argument("--hub-checkpoints", metavar="REPO",
                    help="the training checkpoints a Hub repository publishes as stepN "
                    "revisions (Pythia), downloaded one after the other")  # fmt: skip
    sc.add_argument("--count", type=int, default=6, help="with --hub-checkpoints: how many, "
                    "spread on a log scale of the step (default: 6)")  # fmt: skip
    sc.add_argument("--no-cache", action="store_true", help="measure again")
    sc.add_argument("--json", action="store_true")
    sc.set_defaults(handler=scale)


def _targets(given: list[str] | None) -> list[str]:
    """The models asked for, else the bundled one and every known model installed here."""
    if given:
        return given
    from tokenscope.lm.registry import KNOWN_MODELS, known_model_path

    return ["builtin"] + [m for m in KNOWN_MODELS if known_model_path(m) is not None]


def scale(args: argparse.Namespace) -> int:
    from tokenscope.lm.scale import Probe
    from tokenscope.service import ScaleRun
    from tokenscope.service.records import Progress, ScaleResult

    probe, prompt, icl_text = None, None, None
    if args.icl:
        from tokenscope.cli.inside import icl_text as read_icl_text

        if args.prompt or args.answer or args.fewshot:
            raise ValueError("--icl measures on --text: give no PROMPT, ANSWER or --fewshot")
        icl_text, source = read_icl_text(args.text)
    elif args.text:
        raise ValueError("--text goes with --icl")
    elif args.fewshot:
        from tokenscope.lm.fewshot import load_prompt

        if args.prompt or args.answer:
            raise ValueError("give either PROMPT ANSWER or --fewshot PRESET, not both")
        prompt = load_prompt(args.fewshot)
    else:
        if not args.prompt or args.answer is None:
            raise ValueError("give a PROMPT and the ANSWER whose probability to measure")
        probe = Probe(args.prompt, args.answer)
    results: list[ScaleResult] = []

    def record(r: Progress | ScaleResult) -> None:
        if isinstance(r, ScaleResult):
            results.append(r)
        elif isinstance(r, Progress) and r.label and r.total and not args.json:
            print(f"({r.done + 1}/{r.total}) {printable(r.label)}…", file=sys.stderr, flush=True)

    targets = _targets(args.models)
    if args.hub_checkpoints:
        from tokenscope.lm import hub

        names = hub.training_checkpoints(args.hub_checkpoints, args.count)
        if not names:
            raise ValueError(f"{args.hub_checkpoints} publishes no stepN revisions")
        targets = [f"{hub.PREFIX}{args.hub_checkpoints}@{name}" for name in names]
        targets = (args.models or []) + targets
    job = ScaleRun(
        targets,
        probe=probe,
        prompt=prompt,
        max_shots=args.max_shots,
        use_cache=not args.no_cache,
        icl_text=icl_text,
        pull=bool(args.hub_checkpoints),
    )
    Session().run(job, record)
    errors = [r for r in results if r.error]
    for r in errors:  # (a server's own words among them: one line each, nothing raw)
        print(f"tokenscope: {printable(r.target)}: {printable(r.error)}", file=sys.stderr)
    if icl_text is not None:
        _print_icl(args, source, [r for r in results if r.icl is not None])
    elif prompt is not None:
        _print_sweeps(args, prompt, [r.sweep for r in results if r.sweep is not None])
    else:
        assert probe is not None
        points = [r.point for r in results if r.point is not None]
        curves = [r.curve for r in results if r.curve is not None]
        _print_points(args, probe, points, curves)
    return 2 if errors else 0


def _print_sweeps(
    args: argparse.Namespace, prompt: FewShotPrompt, sweeps: list[ScaleSweep]
) -> None:
    sweeps.sort(key=lambda s: s.parameters)
    if args.json:
        print_json(
            {
                "prompt": prompt.name or args.fewshot,
                "models": [
                    {
                        "model": s.model,
                        "name": s.name,
                        "parameters": s.parameters,
                        "points": [asdict(p) for p in s.points],
                    }
                    for s in sweeps
                ],
            }
        )
        return
    shots = max((len(s.points) for s in sweeps), default=0)
    print(f"P({prompt.answer_text(prompt.expected)!r}) by shots, smallest model first")
    print(f"{'model':<28} {'parameters':>12}  " + "  ".join(f"{k:>10}" for k in range(shots)))
    for s in sweeps:
        values = "  ".join(
            f"{probability_text(p.probability, p.upper_bound):>10}" for p in s.points
        )
        print(f"{printable(s.name)[:28]:<28} {s.parameters:>12,}  {values}")


def _print_points(
    args: argparse.Namespace, probe: Probe, points: list[ScalePoint], curves: list[TrainingCurve]
) -> None:
    points.sort(key=lambda p: p.parameters)
    if args.json:
        print_json(
            {
                "prompt": probe.prompt,
                "answer": probe.continuation,
                "models": [asdict(p) for p in points],
                "runs": [asdict(c) for c in curves],
            }
        )
        return
    print(f"P({probe.continuation!r} | {probe.prompt!r}), smallest model first")
    print(f"{'model':<28} {'parameters':>12}  {'P(answer)':>10}  {'rank':>6}  top prediction")
    for p in points:
        print(
            f"{printable(p.name)[:28]:<28} {p.parameters:>12,}  "
            f"{probability_text(p.probability, p.upper_bound):>10}  "
            f"{format_rank(p.rank, p.rank_above):>6}  "
            f"{p.top_prediction!r} {format_probability(p.top_probability, '.3f')}"
        )
    for c in curves:
        print(f"\n{printable(c.name)} ({c.parameters:,} parameters) during training")
        print(f"{'step':>8}  {'training tokens':>15}  {'P(answer)':>10}  {'rank':>6}")
        for pt in c.points:
            shown = format_probability(pt.probability)
            print(f"{pt.step:>8,}  {pt.tokens:>15,}  {shown:>10}  {pt.rank:>6}")


def _print_icl(args: argparse.Namespace, source: str, results: list[ScaleResult]) -> None:
    results.sort(key=lambda r: r.icl.parameters if r.icl else 0)
    if args.json:
        print_json({"text": source, "models": [
            {**asdict(r.icl), "checkpoints": [asdict(p) for p in r.icl_curve]}
            for r in results if r.icl is not None
        ]})  # fmt: skip
        return
    print(f"In-context learning on {printable(source)} (late minus early loss, nats; negative "
          "learns from context), smallest model first")  # fmt: skip
    print(f"{'model':<28} {'parameters':>12}  {'ICL score':>9}  {'induction':>9}  "
          f"{'strongest':>9}  {'without it':>10}")  # fmt: skip
    for r in results:
        i = r.icl
        assert i is not None
        head = f"L{i.strongest_head[0]} H{i.strongest_head[1]}"
        print(f"{printable(i.name)[:28]:<28} {i.parameters:>12,}  {i.icl_score:>+9.3f}  "
              f"{i.induction_max:>9.3f}  {head:>9}  "
              f"{i.icl_without_strongest:>+10.3f}")  # fmt: skip
    for r in results:
        if r.icl_curve and r.icl is not None:
            print(f"\n{printable(r.icl.name)} during training")
            print(f"{'step':>8}  {'training tokens':>15}  {'ICL score':>9}  {'induction':>9}")
            for pt in r.icl_curve:
                print(f"{pt.step:>8,}  {pt.tokens:>15,}  {pt.icl_score:>+9.3f}  "
                      f"{pt.induction_max:>9.3f}")  # fmt: skip
