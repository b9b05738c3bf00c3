"""lm-evaluation-harness against `tokenscope serve`, with its documented `local-completions`
setup and default arguments (it finds the server's own tokenizer through /tokenizer_info and
/tokenize, and sends token-id prompts in batches): a multiple-choice task scored by
log-likelihood and a `generate_until` task, on data the test writes. Every number must be
the engine's: each choice's log-likelihood within 1e-4, each generated answer the engine's
greedy continuation cut at the stop strings."""

from __future__ import annotations

import json

import pytest

import tokenscope
from tokenscope.lm import GREEDY

from .serve_run import running

pytestmark = pytest.mark.slow

CAPITALS = [
    ("France", ["Paris", "Berlin", "Rome"], 0),
    ("Germany", ["Paris", "Berlin", "Rome"], 1),
    ("Italy", ["Paris", "Berlin", "Rome"], 2),
    ("Japan", ["Tokyo", "Seoul", "Beijing"], 0),
    ("Indonesia", ["Bangkok", "Jakarta", "Manila"], 1),
    ("Spain", ["Lisbon", "Madrid", "Paris"], 1),
    ("Egypt", ["Cairo", "Tunis", "Rabat"], 0),
    ("Canada", ["Toronto", "Ottawa", "Vancouver"], 1),
]
UNTIL = ["\n", ".", ","]

MULTIPLE_CHOICE = """task: capitals_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "The capital of {{{{country}}}} is"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
GENERATE = """task: capitals_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "The capital of {{{{country}}}} is"
doc_to_target: "{{{{' ' + choices[answer]}}}}"
generation_kwargs:
  until: {until}
  do_sample: false
  max_gen_toks: 12
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


@pytest.fixture
def tasks(tmp_path, monkeypatch):
    """The two tasks' folder; nothing may come from the network."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    data = tmp_path / "capitals.jsonl"
    data.write_text("".join(json.dumps({"country": c, "choices": ch, "answer": a}) + "\n"
                            for c, ch, a in CAPITALS), encoding="utf-8")  # fmt: skip
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "capitals_mc.yaml").write_text(MULTIPLE_CHOICE.format(data=data))
    (folder / "capitals_gen.yaml").write_text(GENERATE.format(data=data, until=json.dumps(UNTIL)))
    return folder


def evaluate(root: str, name: str, tasks, extra: str = "", which=("capitals_mc", "capitals_gen")):
    """lm-evaluation-harness's own entry point, as its README shows it for local servers."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(
        model="local-completions",
        model_args=f"base_url={root}/v1/completions,model={name}{extra}",
        tasks=list(which),
        task_manager=TaskManager(include_path=str(tasks)),
        log_samples=True,
    )


def cut_at(text: str, stops: list[str]) -> str:
    hits = [i for s in stops if (i := text.find(s)) >= 0]
    return text[: min(hits)] if hits else text


def greedy_answer(model, prompt: str) -> str:
    gen = model.generate(prompt, max_tokens=12, sampling=GREEDY)
    steps = list(gen)
    tok = model.tokenizer
    text = "".join("" if tok.is_special(s.token_id) else s.text for s in steps) + gen.flushed
    return cut_at(text, UNTIL)


def test_lm_evaluation_harness_scores_as_the_engine_does(tasks):
    model = tokenscope.load_model("builtin")
    from tokenscope.serve import create_app

    with running(create_app(model, name="builtin")) as root:
        results = evaluate(root, "builtin", tasks)
    mc = results["samples"]["capitals_mc"]
    assert len(mc) == len(CAPITALS)
    correct = 0
    for sample in mc:
        doc = sample["doc"]
        context = f"The capital of {doc['country']} is"
        mine = [model.score_continuation(context, " " + c).logprob for c in doc["choices"]]
        theirs = [resp[0][0] for resp in sample["resps"]]
        assert theirs == pytest.approx(mine, abs=1e-4), doc["country"]
        correct += max(range(len(mine)), key=mine.__getitem__) == doc["answer"]
        assert sample["acc"] == float(max(range(len(mine)), key=mine.__getitem__) == doc["answer"])
    assert results["results"]["capitals_mc"]["acc,none"] == pytest.approx(correct / len(CAPITALS))
    gen = results["samples"]["capitals_gen"]
    matches = 0
    for sample in gen:
        doc = sample["doc"]
        mine = greedy_answer(model, f"The capital of {doc['country']} is")
        assert sample["resps"][0][0] == mine, doc["country"]
        match = mine == " " + doc["choices"][doc["answer"]]
        assert sample["exact_match"] == float(match)
        matches += match
    em = results["results"]["capitals_gen"]["exact_match,none"]
    assert em == pytest.approx(matches / len(CAPITALS)) and matches >= 6  # it knows capitals


def test_the_harness_gets_on_smollm2_what_llama_cpp_gives_it_on_the_same_file(tasks, llama):
    """The same GGUF file behind both servers: where the two greedy answers agree, the harness
    scores them alike (it scored 0 of 8 on `tokenscope serve` when the end-of-text token and
    stop strings leaked into the text, 7 of 8 on llama.cpp)."""
    from tokenscope.serve import create_app

    model = tokenscope.load_model("smollm2-135m")
    with running(create_app(model, name="smollm2")) as root:
        ours = evaluate(root, "smollm2", tasks, which=["capitals_gen"])["samples"]["capitals_gen"]
    # llama.cpp's server has no /tokenizer_info: the harness sends it text (and without a
    # tokenizer it runs no log-likelihood task).
    as_text = ",tokenizer_backend=None,tokenized_requests=False"
    theirs = evaluate(llama.removesuffix("/v1"), "smollm2", tasks, as_text, ["capitals_gen"])
    theirs = theirs["samples"]["capitals_gen"]
    for a, b in zip(ours, theirs, strict=True):  # (shown with -s: the figures in docs/servers.md)
        print(f"{a['doc']['country']:<10} ours {a['resps'][0][0]!r:<12} {a['exact_match']:.0f}  "
              f"llama.cpp {b['resps'][0][0]!r:<12} {b['exact_match']:.0f}")  # fmt: skip
    agree = [(a, b) for a, b in zip(ours, theirs, strict=True)
             if a["resps"][0][0] == b["resps"][0][0]]  # fmt: skip
    assert len(agree) >= 6, [(a["resps"], b["resps"]) for a, b in zip(ours, theirs, strict=True)]
    assert all(a["exact_match"] == b["exact_match"] for a, b in agree)
    ours_em = sum(s["exact_match"] for s in ours)
    theirs_em = sum(s["exact_match"] for s in theirs)
    assert ours_em >= theirs_em - (len(ours) - len(agree))  # differences only where texts do


def _docs_blocks() -> list[tuple[str, str]]:
    """(language, code) of each block between the serve-commands markers of docs/servers.md."""
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "servers.md"
    section = page.read_text(encoding="utf-8")
    section = section.split("<!-- serve-commands -->")[1].split("<!-- /serve-commands -->")[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, re.S)


def test_the_serving_pages_commands_run_as_written(tasks, tmp_path):
    """The serving section of docs/servers.md, run: the server command (on a free port), the
    OpenAI SDK snippet and the lm_eval command (on this test's tasks instead of hellaswag,
    which would be downloaded)."""
    import contextlib
    import io
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    blocks = _docs_blocks()
    assert [lang for lang, _ in blocks] == ["bash", "python", "bash"]
    serve_line = next(line for line in blocks[0][1].splitlines() if "tokenscope serve" in line)
    args = shlex.split(serve_line.split("#")[0])
    assert args[:2] == ["tokenscope", "serve"] and "--port" in args
    args[args.index("--port") + 1] = "0"
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    server = subprocess.Popen([sys.executable, "-m", "tokenscope", *args[1:]], **pipes)
    try:
        line = server.stdout.readline()
        assert "serving" in line, line + server.stderr.read()
        url = line.split(" at ")[1].split()[0]  # http://127.0.0.1:PORT/v1
        snippet = blocks[1][1].replace("http://127.0.0.1:8000/v1", url)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(snippet, "docs/servers.md", "exec"), {})
        assert "Paris" in printed.getvalue() and "total_tokens" in printed.getvalue()
        command = blocks[2][1].replace("\\\n", " ").replace("http://127.0.0.1:8000", url[:-3])
        args = shlex.split(command)
        args[args.index("--tasks") + 1] = "capitals_gen"
        out = tmp_path / "results"
        lm_eval = Path(sys.executable).with_name("lm_eval")
        done = subprocess.run([str(lm_eval), *args[1:], "--include_path", str(tasks),
                               "--output_path", str(out)],
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        assert "capitals_gen" in done.stdout and "exact_match" in done.stdout
    finally:
        server.terminate()
        server.wait(30)
