"""The README and the documentation site under docs/: the site builds with strict link
checking, every code block in them is valid, every command line they show names real
subcommands, flags, files and make targets, and the README's "Build your own" runs.

A ```python block that is deliberately partial is preceded by `<!-- fragment -->`;
there should be few.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from baton.cli import starter, worker
from tests.processes import ended

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FRAGMENT = "<!-- fragment -->"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```",
                   re.MULTILINE | re.DOTALL)
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
OPERATORS = {"&", "&&", "|", "||", ";", ">", ">>", "<", "2>", "2>&1"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    text: str
    fragment: bool

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(language: set[str]) -> Iterator[Block]:
    for page in PAGES:
        source = page.read_text()
        for match in FENCE.finditer(source):
            if match["lang"] not in language:
                continue
            indent = len(match["indent"])
            body = "".join(line[indent:] for line in match["body"].splitlines(keepends=True))
            before = source[:match.start()].rstrip()
            yield Block(page, source.count("\n", 0, match.start()) + 1, match["lang"], body,
                        before.endswith(FRAGMENT))


# -- the site ------------------------------------------------------------------------


def build_site(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config),
         "-d", str(site)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_the_site_builds_strictly_and_a_broken_anchor_fails_it(tmp_path: Path) -> None:
    built = build_site(ROOT / "mkdocs.yml", tmp_path / "site")
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "site" / "flows" / "index.html").exists()
    # The same site with one link to a heading that does not exist must not build.
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    index = copy / "docs" / "index.md"
    index.write_text(index.read_text() + "\n[broken](flows.md#no-such-heading)\n")
    broken = build_site(copy / "mkdocs.yml", tmp_path / "broken")
    assert broken.returncode != 0 and "no-such-heading" in broken.stderr, broken.stderr


def test_the_readme_links_to_pages_that_exist() -> None:
    """The README is not part of the site, so mkdocs does not check its links."""
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if "://" not in t]
    assert len(local) >= 10 and [t for t in local if not (ROOT / t).exists()] == []


def test_every_docs_page_is_in_the_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert {p for p in pages if f": {p}\n" not in config} == set()


# -- code blocks ---------------------------------------------------------------------


def test_every_python_block_compiles() -> None:
    checked = fragments = 0
    for block in blocks({"python", "py"}):
        if block.fragment:
            fragments += 1
            continue
        try:  # top-level await is how the docs show calls made from async code
            compile(block.text, block.where(), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError as error:
            pytest.fail(f"{block.where()}: {error}")
        checked += 1
    assert checked >= 8 and fragments <= 3, (checked, fragments)


def test_every_toml_block_parses() -> None:
    checked = 0
    for block in blocks({"toml"}):
        try:
            tomllib.loads(block.text)
        except tomllib.TOMLDecodeError as error:
            pytest.fail(f"{block.where()}: {error}")
        checked += 1
    assert checked >= 3


# -- command lines -------------------------------------------------------------------


def command_lines(text: str) -> Iterator[list[str]]:
    """Each shell command of a block, as words: continuations joined, comments dropped,
    split at `&&`, `|`, `;`, `&` and redirections; optional parts in brackets kept."""
    for line in text.replace("\\\n", " ").splitlines():
        line = line.removeprefix("$ ")
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # an unbalanced quote inside $(...): not a command we check
            continue
        command: list[str] = []
        # Usage notation: `[--json]` and `[--request ID]` are checked as if given.
        words = [w.removeprefix("[").removesuffix("]") if w not in OPERATORS else w
                 for w in words]
        for word in [*words, ";"]:
            if word in OPERATORS:
                if command:
                    yield command
                command = []
            else:
                command.append(word)


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def parse_error(parser: argparse.ArgumentParser, args: list[str]) -> str | None:
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(args)
        except SystemExit as exit_:
            return errors.getvalue().strip() if exit_.code else None
    return None


def problems_of(words: list[str]) -> Iterator[str]:
    parsers = {"starter.py": starter.build_parser, "worker.py": worker.build_parser}
    if words[0] == "make":
        targets = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
        yield from (f"no make target {t!r}" for t in targets if t not in makefile_targets())
        return
    for i, word in enumerate(words[:-1]):
        if not word.endswith(("python", "python3")):
            continue
        script = words[i + 1]
        if script in parsers:
            error = parse_error(parsers[script](), words[i + 2:])
            if error:
                yield error
        elif script.endswith(".py") and "/" in script and not (ROOT / script).exists():
            yield f"no such file {script}"


def test_every_command_line_names_real_commands_flags_and_targets() -> None:
    problems, checked = [], 0
    for block in blocks(SHELL_LANGUAGES):
        for words in command_lines(block.text):
            checked += 1
            problems += [f"{block.where()}: {' '.join(words)}\n    {p}"
                         for p in problems_of(words)]
    assert not problems, "\n".join(problems)
    assert checked >= 50


def test_the_command_checks_catch_what_is_wrong() -> None:
    """The checks above can fail: each of these is refused."""
    for line in ["python starter.py runn support_desk hi", "make no-such-target",
                 ".venv/bin/python starter.py run support_desk hi --no-such-flag",
                 "python worker.py --app", "python examples/nothing_here.py"]:
        [words] = command_lines(line)
        assert list(problems_of(words)), line
    [words] = command_lines('python starter.py run support_desk "hi" --app examples.support_desk')
    assert not list(problems_of(words))


# -- the README's "Build your own" runs ----------------------------------------------


def readme_build_your_own() -> str:
    section = (ROOT / "README.md").read_text().split("\n## Build your own\n", 1)[1]
    return section.split("```python\n", 1)[1].split("\n```", 1)[0] + "\n"


async def test_the_readme_build_your_own_block_runs(
        env: WorkflowEnvironment, task_queue: str, tmp_path: Path) -> None:
    (tmp_path / "my_app.py").write_text(readme_build_your_own())
    process = await asyncio.create_subprocess_exec(
        sys.executable, "my_app.py", cwd=tmp_path,
        env={**os.environ, "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
             "BATON_TASK_QUEUE": task_queue},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await ended(process)
    stdout, stderr = out.decode(), err.decode()
    # A process that used a Temporal client may abort at interpreter exit after all its
    # work is done (sdk-python issue 300); that is not the README's fault.
    teardown_abort = process.returncode == -signal.SIGABRT and "PyGILState" in stderr
    assert process.returncode == 0 or teardown_abort, stderr
    assert "agent: ok  http" in stdout and "flow:  ok  http" in stdout, stdout
