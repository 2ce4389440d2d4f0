"""Every console session in docs/cli.md, run and compared with what the page shows, so the page
cannot go stale.

The page's setup (section 1: a bash block making files from the shared data, a Python block
making small .npz files) runs first in a scratch folder that stands in for /tmp/rnndsl-demo;
then each ```console block runs in page order, from the repository root, each `$` line with
its expected output (`...` stands for any lines, `[exit N]` for the exit status). Output is
compared after normalising what differs from machine to machine: the scratch folder's path,
run folders' timestamps, progress bars, timings and benchmark figures; other numbers must
agree to 0.5% (the page's figures come from another run of the same seeds, whose float32 sums
may round differently). A command that reads the shared data sets (or a run trained on them)
is skipped where they are absent. A block preceded by `<!-- not run: WHY -->` is not run.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from rnndsl.tools.cli import main
from conftest import ROOT

DOC = ROOT / "docs" / "cli.md"
DEMO = "/tmp/rnndsl-demo"
SHARED = "/work/shared/data"
NOT_RUN = re.compile(r"<!-- not run: (.+?) -->\s*$")
PROGRESS = re.compile(r"^\S+: +\d+%\|")                        # a tqdm bar, as the page shows
QUIET_PROGRESS = re.compile(r"^\S+: step \d+/\d+, loss \S+ \(\d+ s\)$")   # its form off a terminal
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


@dataclass(frozen=True)
class Command:
    line: int                      # in docs/cli.md
    text: str                      # after the `$ `
    expected: tuple                # the lines the page shows after it


@dataclass(frozen=True)
class Block:
    line: int
    commands: tuple
    not_run: str | None            # the reason the page gives


def console_blocks(text: str) -> list:
    lines, blocks, i = text.split("\n"), [], 0
    while i < len(lines):
        if lines[i].strip() == "```console":
            end = lines.index("```", i + 1)
            before = next((ln for ln in reversed(lines[:i]) if ln.strip()), "")
            skip = NOT_RUN.search(before)
            blocks.append(Block(i + 1, tuple(_commands(lines[i + 1:end], i + 2)), skip and skip.group(1)))
            i = end
        i += 1
    return blocks


def _commands(body: list, first: int) -> list:
    commands, current = [], None
    for n, line in enumerate(body, first):
        if line.startswith("$ "):
            current = [n, line[2:], []]
            commands.append(current)
        elif current is not None:
            current[2].append(line)
    return [Command(n, text, tuple(_trim(out))) for n, text, out in commands]


def _trim(lines: list) -> list:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def setup_blocks(text: str) -> tuple:
    """Section 1's bash and Python blocks, and every Python block the page names as a file
    (`use_elman.py`:), as {name: text}."""
    bash = re.search(r"```bash\n(D=/tmp/rnndsl-demo.*?)```", text, re.S).group(1)
    python = re.search(r"```python\n(import numpy as np\nD = \"/tmp/rnndsl-demo\".*?)```", text, re.S).group(1)
    files = dict(re.findall(r"`(\w+\.py)`:\n\n```python\n(.*?)```", text, re.S))
    return bash, python, files


BLOCKS = console_blocks(DOC.read_text())


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rnndsl-demo")
    bash, python, files = setup_blocks(DOC.read_text())
    if not Path(SHARED).is_dir() or not any(Path(SHARED).iterdir()):
        bash = "\n".join(ln for ln in bash.splitlines() if SHARED not in ln and "speech_small" not in ln)
    subprocess.run(["bash", "-c", _local(bash, folder)], cwd=ROOT, check=False, env=_env(), capture_output=True)
    exec(compile(_local(python, folder), "docs/cli.md", "exec"), {})
    for name, code in files.items():
        (folder / name).write_text(_local(code, folder))
    return folder


def _local(text: str, folder: Path) -> str:
    return (text.replace(DEMO, str(folder)).replace("/tmp/cap", f"{folder}-cap")
            .replace("/work/main/", f"{ROOT}/"))


def _env() -> dict:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               COLUMNS="200")
    return env


def _needs_shared(command: str, tainted: set) -> bool:
    """A command that reads the shared data, a file made from it, or a run trained on it."""
    return SHARED in command or any(name in command for name in tainted)


def _outputs(command: str) -> list:
    words = command.split()
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--out"]


# the programs a session may run; any other (pip, mpiexec) would change or need this machine
PROGRAMS = {"rnndsl", "cut", "cd", "ls", "head", "tail", "grep", "cat", "python3", "diff", "sed", "rm", "cp", "timeout", "echo"}
SHELL = re.compile(r"[;|&<>*$`()]|^cd |^timeout |^python3 |^rm |^sed |^head |^ls |^grep |^cat |^diff ")


def _programs(command: str) -> set:
    """The first word of each part of a shell line (parts split by ; | && and process substitution)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.commenters, programs, first = "#", set(), True
    for token in lexer:
        if token and set(token) <= set(";|&()<>"):
            first = True
        elif first:
            programs.add(token)
            first = False
    return programs


def run(command: str) -> tuple:
    """(output with standard error merged, exit status): in this process where the command is
    plain `rnndsl ...` (numba's kernels compile once), else through bash."""
    if command.startswith("rnndsl ") and not SHELL.search(command):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            try:
                status = main(shlex.split(command, comments=True)[1:])
            except SystemExit as stop:
                status = stop.code
        return buffer.getvalue(), status
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)
    return done.stdout, done.returncode


def normalise(lines, folder: Path) -> list:
    out = []
    for line in lines:
        line = line.replace(f"{folder}-cap", "/tmp/cap").replace(str(folder), DEMO).replace(str(ROOT) + "/", "")
        line = re.sub(r"\d{8}-\d{6}", "TIME", line)                       # runs/NAME-TIME
        if PROGRESS.match(line) or QUIET_PROGRESS.match(line):
            continue
        if line.startswith("| ") and "±" in line:                          # bench: timings
            line = re.sub(r"\| [\d.]+ ±\d+% \| [\d.]+ ±\d+% \| [\d.]+ \| [\d.]+ \|$", "| TIMES |", line)
        line = re.sub(r"\b\d+\.\d+ s\b", "S s", line)
        line = re.sub(r"\b(numba|numpy) backend", "BACKEND backend", line)            # the default here
        line = line.replace(" (numba compiling its kernels, or loading them from its disk cache)", "")
        out.append(line.rstrip())
    return out


def matches(expected: list, actual: list) -> bool:
    """`...` in expected stands for any run of lines (none included)."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and same_line(expected[0], actual[0]) and matches(expected[1:], actual[1:])


def same_line(expected: str, actual: str) -> bool:
    if NUMBER.sub("N", expected) != NUMBER.sub("N", actual):
        return False
    return all(same_number(a, b) for a, b in zip(NUMBER.findall(expected), NUMBER.findall(actual)))


def same_number(shown: str, got: str) -> bool:
    """Equal up to rounding: within 0.5%, or one unit of the last decimal shown; a number in
    exponent notation (a gradient check's 1e-11 errors, rounding's own size) within a factor
    of ten, as the same order of magnitude."""
    x, y = float(shown), float(got)
    if x == y:
        return True
    if "e" in shown.lower():
        return x != 0 and y != 0 and (x > 0) == (y > 0) and abs(math.log10(abs(x) / abs(y))) <= 1
    places = len(shown.split(".")[1]) if "." in shown else 0
    return math.isclose(x, y, rel_tol=5e-3, abs_tol=10.0 ** -places if places else 0)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"line{b.line}" for b in BLOCKS])
def test_the_session_prints_what_the_page_shows(block, demo, tainted):
    if block.not_run:
        pytest.skip(f"docs/cli.md marks it not run: {block.not_run}")
    ran = 0
    if not block.commands:
        pytest.fail(f"docs/cli.md:{block.line}: a console block without a `$` command: mark it not run, or show one")
    for command in block.commands:
        programs = _programs(command.text)
        assert programs <= PROGRAMS, (f"docs/cli.md:{command.line}: runs {sorted(programs - PROGRAMS)}; "
                                      "mark the block <!-- not run: WHY -->")
        if _needs_shared(command.text, tainted) and not _has_shared():
            tainted.update(_outputs(command.text))
            continue
        output, status = run(_local(command.text, demo))
        got = normalise(output.rstrip("\n").split("\n") if output.strip() else [], demo)
        got += [f"[exit {status}]"] if status else []
        want = [ln.rstrip() for ln in normalise(command.expected, Path("/nonexistent"))]
        if not matches(want, got) and os.environ.get("RNNDSL_UPDATE_DOCS"):    # a maintainer's rewrite
            UPDATES[command.line] = (len(command.expected), got)      # normalised: read over timings
            continue
        assert matches(want, got), (f"docs/cli.md:{command.line}: $ {command.text}\n--- the page shows:\n"
                                    + "\n".join(want) + "\n--- it printed:\n" + "\n".join(got))
        ran += 1
    if not ran:
        pytest.skip("every command reads the shared data sets, which are absent here")


UPDATES: dict = {}     # RNNDSL_UPDATE_DOCS=1: line of a command -> (lines shown, lines printed)


@pytest.fixture(scope="module", autouse=True)
def rewrite_the_page():
    """With RNNDSL_UPDATE_DOCS=1, the page's output of each command that differs is replaced by
    what it printed (to be read over before committing: a wrong output is a bug, not a doc change)."""
    yield
    if UPDATES:
        lines = DOC.read_text().split("\n")
        for at in sorted(UPDATES, reverse=True):
            shown, printed = UPDATES[at]
            lines[at:at + shown] = printed
        DOC.write_text("\n".join(lines))


@pytest.fixture(scope="module")
def tainted() -> set:
    """Files made from the shared data, and runs trained on them (added as commands are met)."""
    return {"shakespeare20k", "shakespeare_next5k", "shakespeare_tail", "speech_small"}


def _has_shared() -> bool:
    return Path(SHARED, "text", "tinyshakespeare.txt").is_file()


def test_the_page_parses_into_sessions():
    """The parser finds the page's sessions: a failure here is a change of format, not of output."""
    assert len(BLOCKS) > 40 and sum(len(b.commands) for b in BLOCKS) > 100
    assert all(c.text.strip() for b in BLOCKS for c in b.commands)


def usage_blocks(text: str) -> list:
    """(line, command, options) of each plain ``` block that starts with `rnndsl COMMAND`:
    the page's usage lines for that command."""
    found = []
    for m in re.finditer(r"```\n(rnndsl (\w+).*?)```", text, re.S):
        options = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", m.group(1)))
        found.append((text[:m.start()].count("\n") + 1, m.group(2), options))
    return found


def parser_options(command: str) -> set:
    from rnndsl.tools.cli import _parser
    sub = next(a for a in _parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    return {o for a in sub.choices[command]._actions for o in a.option_strings} - {"-h", "--help"}


@pytest.mark.parametrize("line, command, options", usage_blocks(DOC.read_text()),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_usage_lines_name_every_option_and_no_other(line, command, options):
    """The usage block of each command names exactly the options the CLI takes (by either of
    an option's names): a new flag or a removed one shows here."""
    from rnndsl.tools.cli import _parser
    sub = next(a for a in _parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    actions = [a for a in sub.choices[command]._actions if a.option_strings and "--help" not in a.option_strings]
    missing = [a.option_strings[-1] for a in actions if not options & set(a.option_strings)]
    unknown = sorted(options - parser_options(command))
    assert not missing and not unknown, (f"docs/cli.md:{line}: `rnndsl {command}` usage lacks {missing} "
                                         f"and names {unknown}, which it does not take")
