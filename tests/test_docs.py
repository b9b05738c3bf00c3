"""What the README and docs/ show still works: every `tokenscope` command in a shell block runs as
written (or the page says above the block why it is not run), the output a console block shows
is what the command prints, every relative link leads to a file (and heading), the README stays
a short start and its Python example runs.

Commands run as a person would run them, each in a fresh process, offline, on the bundled model,
with a private TOKENSCOPE_HOME and cache, in an empty folder and with a time limit.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = {"bash", "sh", "shell", "console", "zsh"}
COMMAND = re.compile(r"^(tokenscope|python3? -m tokenscope)(\s|$)")
NOT_RUN = re.compile(r"^<!--\s*not run\b:?(.*?)-->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")
README_MAX_LINES = 220
SECONDS_PER_COMMAND = 60


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    lines: list[str]
    exemption: str | None  # the reason given above the block; "" for a marker without one
    commands: list[Command] = field(default_factory=list)


@dataclass
class Command:
    where: str  # page:line
    text: str
    shown_output: list[str]  # a console block's lines after `$ command`
    exemption: str | None


def read_blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, each with the not-run marker on the line just above it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{page.name}:{i + 1}: a code block is never closed"
        above = NOT_RUN.match(lines[i - 1].strip()) if i else None
        exemption = above.group(1).strip() if above else None
        blocks.append(Block(page, i + 1, opening.group(1), lines[i + 1 : end], exemption))
        i = end + 1
    for block in blocks:
        block.commands = _commands(block)
    return blocks


def _commands(block: Block) -> list[Command]:
    if block.language not in SHELLS:
        return []
    found: list[Command] = []
    lines = list(enumerate(block.lines, start=block.line + 1))
    while lines:
        number, line = lines.pop(0)
        while line.endswith("\\") and lines:  # a command continued on the next line
            line = line[:-1] + " " + lines.pop(0)[1].strip()
        if block.language == "console":
            if not line.startswith("$ "):
                continue
            text = line[2:].strip()
            output = []
            while lines and not lines[0][1].startswith("$ "):
                output.append(lines.pop(0)[1].rstrip())
        else:
            text, output = line.strip(), []
        if COMMAND.match(text):
            where = f"{block.page.relative_to(ROOT)}:{number}"
            found.append(Command(where, text, [o for o in output if o.strip()], block.exemption))
    return found


def _once(commands: list[Command]) -> list[Command]:
    """Each command line once (several pages show `tokenscope doctor`), its shown output kept."""
    seen: dict[tuple[str, ...], Command] = {}
    for command in commands:
        key = tuple(shlex.split(command.text, comments=True))
        if key in seen:
            seen[key].shown_output += command.shown_output
        else:
            seen[key] = Command(command.where, command.text, list(command.shown_output), None)
    return list(seen.values())


BLOCKS = [block for page in PAGES for block in read_blocks(page)]
COMMANDS = [command for block in BLOCKS for command in block.commands]
TO_RUN = _once([command for command in COMMANDS if command.exemption is None])


def test_the_docs_show_commands_and_run_most_of_them():
    """The collection itself: a change that stops finding commands must not pass quietly."""
    assert len(COMMANDS) >= 30, [c.text for c in COMMANDS]
    assert len(TO_RUN) >= 10, [c.text for c in TO_RUN]
    assert {c.where.split(":")[0] for c in TO_RUN} >= {"README.md", "docs/cli.md"}


def test_every_command_not_run_says_why():
    for block in BLOCKS:
        if block.exemption is not None:
            assert len(block.exemption.split()) >= 3, (
                f"{block.page.name}:{block.line}: '<!-- not run: REASON -->' needs a reason"
            )
            assert block.commands, f"{block.page.name}:{block.line}: exempts no command"


def test_a_not_run_marker_stands_just_above_a_block():
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if re.match(r"^<!--\s*not run", line.strip()):
                assert NOT_RUN.match(line.strip()), f"{page.name}:{i + 1}: malformed marker"
                assert i + 1 < len(lines) and FENCE.match(lines[i + 1]), (
                    f"{page.name}:{i + 1}: a not-run marker must be the line above a ``` block"
                )


def _environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TOKENSCOPE_HOME=str(home / "tokenscope-home"),
        XDG_CACHE_HOME=str(home / "cache"),
        HF_HUB_OFFLINE="1",
        HF_HUB_CACHE=str(home / "hf-cache"),
        QT_QPA_PLATFORM="offscreen",
        OMP_NUM_THREADS="1",
    )
    return env


def run_command(text: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """`tokenscope ARGS` as a terminal runs it (quotes and trailing comments as a shell reads
    them), in a fresh Python."""
    args = shlex.split(text, comments=True)
    if args[0] != "tokenscope":  # python -m tokenscope ...
        args = args[2:]
    return subprocess.run([sys.executable, "-m", "tokenscope", *args[1:]], cwd=folder,
                          env=_environment(folder), capture_output=True, text=True,
                          timeout=SECONDS_PER_COMMAND, stdin=subprocess.DEVNULL)  # fmt: skip


def _name(command: Command) -> str:
    return f"{command.where} {command.text[:40].rstrip()}"


@pytest.mark.parametrize("command", TO_RUN, ids=_name)
def test_a_command_the_docs_show_runs(command, tmp_path):
    done = run_command(command.text, tmp_path)
    assert done.returncode == 0, (
        f"{command.where}: `{command.text}` exited {done.returncode} — fix the command, or put "
        f"'<!-- not run: REASON -->' above its block\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
    )
    printed = [line.rstrip() for line in done.stdout.splitlines()]
    missing = [line for line in command.shown_output if line not in printed]
    assert not missing, f"{command.where}: shown, no longer printed: {missing}"


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_relative_link_leads_to_a_file_and_heading():
    checked = 0
    for page in PAGES:
        text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: ({target})"
            assert file.is_relative_to(ROOT) and file.exists(), f"{where} leads nowhere"
            if anchor:
                assert anchor in _anchors(file), f"{where}: no such heading in {file.name}"
            checked += 1
    assert checked >= 40  # the pages link to each other


def test_the_readme_is_a_short_start_that_leads_to_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < README_MAX_LINES
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.name != "README.md":
            assert f"](docs/{page.name})" in readme, f"the README does not link {page.name}"
            index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
            assert f"]({page.name})" in index, f"docs/README.md does not list {page.name}"


def test_every_page_opens_with_a_title_and_a_paragraph():
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("# "), f"{page.name}: no title"
        first = next(line for line in lines[1:] if line.strip())
        assert re.match(r"^[A-Z`\"*]", first) and not first.startswith("|"), (
            f"{page.name}: the title is not followed by an introducing paragraph"
        )


def test_the_readme_keeps_one_test_command_for_ci():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count("<!-- test-command -->") == 1 == readme.count("<!-- /test-command -->")
    section = readme.split("<!-- test-command -->")[1].split("<!-- /test-command -->")[0]
    command = [line for line in section.strip().splitlines() if not line.startswith("```")]
    assert len(command) == 1 and command[0].endswith("python -m pytest"), command


def test_the_readmes_python_example_runs(tmp_path):
    readme = next(b for b in BLOCKS if b.page.name == "README.md" and b.language == "python")
    code = "\n".join(readme.lines)
    assert "load_model" in code and len(readme.lines) <= 12
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_environment(tmp_path),
                          capture_output=True, text=True, timeout=SECONDS_PER_COMMAND)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[0] == " Jakarta", done.stdout
