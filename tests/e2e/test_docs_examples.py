"""Every code example in docs/ runs against a real server, and the site builds with --strict.

The convention (also stated in docs/index.md, "About these pages"):

- A fenced block of language `sh` (or `bash`) or `python` is an example, and is run, in the
  order of the page, unless the line just before it is `<!-- not-run: why -->` (the reason is
  required; such a block is still syntax-checked: `bash -n`, `compile`). Other code languages
  (`shell`, `console`, `pycon`, ...) are refused, so no example escapes by its label; `json`,
  `text` and unlabelled blocks are data (request bodies, shapes), not examples.
- A block whose options hold `title="Output"` (```json title="Output"```) is the expected output
  of the example before it (prose may stand between, no other block). `json`: the example's
  stdout is a sequence of JSON values (or, from `print()` in Python, one Python literal a line)
  compared value by value, where the string `"..."` matches any value, `...` inside a string
  matches any text, a key `"..."` lets an object have more keys than shown, and a last list
  element `"..."` lets a list go on. `text`: compared line by line, `...` matching any text.
- Examples of one page share a session: shell blocks run in `bash` with `set -eo pipefail`, each
  seeing the variables the earlier ones set (they are exported); Python blocks run in one
  namespace per page. Every block must succeed (exit status 0, no exception).
- The environment the examples read: `PUSHGATE_URL` (the server, `pushgate serve --emulate` on a
  temp data dir), `PUSHGATE_DATA_DIR` (its data dir, so `pushgate partners ...` reach it),
  `PARTNER`, `API_KEY`, `REQUEST_TOKEN`, `SDK_KEY` (a partner created for the page). Each page
  runs in an empty working directory of its own.

Sources: the docs issue ("every code example in them is executed by a test"; "the docs build
with --strict in CI").
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import inspect
import io
import json
import os
import re
import shutil
import subprocess
import sys
import traceback
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.support.server import Server, process_env

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
VENV_BIN = Path(sys.executable).parent
RUN_LANGUAGES = {"sh": "sh", "bash": "sh", "python": "python"}
# Code that is neither run nor data: refused, so an example cannot escape by its label.
REFUSED_LANGUAGES = {"shell", "console", "zsh", "pycon", "py", "python3", "shell-session"}
NOT_RUN = re.compile(r"^<!--\s*not-run(?::\s*(?P<why>.*?))?\s*-->$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)(?P<options>.*)$")
OUTPUT_TITLE = re.compile(r"""\btitle\s*=\s*["']Output["']""")
BLOCK_TIMEOUT = 60  # seconds, for one shell example


@dataclass
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    options: str
    code: str
    not_run: str | None = None  # the reason given, when marked
    output: Block | None = None  # the expected output shown after it

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in RUN_LANGUAGES and self.not_run is None

    @property
    def is_output(self) -> bool:
        return bool(OUTPUT_TITLE.search(self.options))


def fenced_blocks(page: str, text: str) -> list[Block]:
    """The page's fenced blocks, each with the not-run marker before it, in order."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not (
            lines[j].strip().startswith(fence) and set(lines[j].strip()) == {fence[0]}
        ):
            line = lines[j]
            body.append(line[indent:] if not line[:indent].strip() else line.lstrip())
            j += 1
        before = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        marker = NOT_RUN.match(before)
        blocks.append(
            Block(
                page,
                i + 1,
                opening["lang"].lower(),
                opening["options"],
                "\n".join(body) + "\n",
                not_run=(marker["why"] or "") if marker else None,
            )
        )
        i = j + 1
    return blocks


def page_blocks(path: Path) -> list[Block]:
    """The page's blocks with each Output block attached to the example before it."""
    blocks = fenced_blocks(path.name, path.read_text())
    for previous, block in zip([None, *blocks], blocks, strict=False):
        if block.is_output and previous is not None and not previous.is_output:
            previous.output = block
    return blocks


def pages() -> list[Path]:
    return sorted(DOCS.glob("**/*.md"))


def page_id(path: Path) -> str:
    return str(path.relative_to(DOCS))


# ---- expected output ----


def json_values(text: str) -> list[Any]:
    """A sequence of JSON values separated by whitespace; else one Python literal per line."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    pos, text = 0, text.strip()
    try:
        while pos < len(text):
            value, pos = decoder.raw_decode(text, pos)
            values.append(value)
            while pos < len(text) and text[pos].isspace():
                pos += 1
        return values
    except json.JSONDecodeError:
        pass
    try:
        return [ast.literal_eval(line) for line in text.splitlines() if line.strip()]
    except (ValueError, SyntaxError):
        raise AssertionError(f"the output is not JSON (nor Python literals):\n{text}") from None


def text_matches(pattern: str, actual: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("..."))
    return re.fullmatch(regex, actual, re.DOTALL) is not None


def mismatch(expected: Any, actual: Any, path: str = "$") -> str | None:
    """Where `actual` differs from `expected` (with the wildcards above), or None."""
    if expected == "...":
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path}: expected an object, got {actual!r}"
        keys = set(expected) - {"..."}
        if missing := keys - set(actual):
            return f"{path}: missing {sorted(missing)} in {actual!r}"
        if "..." not in expected and (extra := set(actual) - keys):
            return f"{path}: unexpected {sorted(extra)} in {actual!r}"
        for key in sorted(keys):
            if found := mismatch(expected[key], actual[key], f"{path}.{key}"):
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"{path}: expected a list, got {actual!r}"
        open_ended = bool(expected) and expected[-1] == "..."
        items = expected[:-1] if open_ended else expected
        if len(actual) < len(items) or (not open_ended and len(actual) != len(items)):
            return f"{path}: expected {len(items)} items, got {len(actual)}: {actual!r}"
        for n, item in enumerate(items):
            if found := mismatch(item, actual[n], f"{path}[{n}]"):
                return found
        return None
    if isinstance(expected, str) and "..." in expected:
        if isinstance(actual, str) and text_matches(expected, actual):
            return None
        return f"{path}: {actual!r} does not match {expected!r}"
    if type(expected) is not type(actual) and not (
        isinstance(expected, int | float)
        and isinstance(actual, int | float)
        and not isinstance(expected, bool)
        and not isinstance(actual, bool)
    ):
        return f"{path}: expected {expected!r}, got {actual!r}"
    return None if expected == actual else f"{path}: expected {expected!r}, got {actual!r}"


def check_output(block: Block, output: str) -> None:
    shown = block.output
    assert shown is not None
    if shown.lang == "json":
        expected, actual = json_values(shown.code), json_values(output)
        if len(expected) != len(actual):
            pytest.fail(
                f"{block.where}: {len(expected)} values shown at {shown.where}, the example"
                f" printed {len(actual)}:\n{output}"
            )
        for n, (want, got) in enumerate(zip(expected, actual, strict=True)):
            if found := mismatch(want, got, f"${n}" if len(expected) > 1 else "$"):
                pytest.fail(f"{block.where}: output differs from {shown.where}: {found}")
        return
    want_lines = [line.rstrip() for line in shown.code.strip().splitlines()]
    got_lines = [line.rstrip() for line in output.strip().splitlines()]
    if not text_matches("\n".join(want_lines), "\n".join(got_lines)):
        pytest.fail(f"{block.where}: output differs from {shown.where}:\n{output}")


# ---- running a page ----


@dataclass
class PageSession:
    """The examples of one page: one shell state, one Python namespace, one working dir."""

    workdir: Path
    env: dict[str, str]
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__docs__"})

    @property
    def state(self) -> Path:
        return self.workdir / ".docs-shell-state"

    def shell_env(self) -> dict[str, str]:
        """The page's environment with what the shell examples so far exported."""
        dump = self.workdir / ".docs-shell-env"
        if not dump.exists():
            return dict(self.env)
        pairs = (item.split("=", 1) for item in dump.read_text().split("\0") if "=" in item)
        return {name: value for name, value in pairs}

    def close(self) -> None:
        """Close what the Python examples left open (clients), as the end of a script would."""
        for value in list(self.namespace.values()):
            close = getattr(value, "close", None)
            if isinstance(value, type | types.ModuleType) or not callable(close):
                continue
            with contextlib.suppress(Exception):
                result = close()
                if inspect.iscoroutine(result):
                    result.close()  # an async client's: nothing to await it with here
        self.namespace.clear()

    def run(self, block: Block) -> str:
        if RUN_LANGUAGES[block.lang] == "sh":
            return self.run_shell(block)
        return self.run_python(block)

    def run_shell(self, block: Block) -> str:
        state, dump = self.state, self.workdir / ".docs-shell-env"
        script = (
            "set -a\n"
            f'[ -f "{state}" ] && . "{state}"\n'
            f'trap \'export -p > "{state}"; env -0 > "{dump}"\' EXIT\n'
            "set -eo pipefail\n" + block.code
        )
        try:
            done = subprocess.run(
                ["bash", "-c", script],
                cwd=self.workdir,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT,
            )
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"{block.where}: still running after {BLOCK_TIMEOUT} s:\n{e.stdout!r}")
        if done.returncode != 0:
            pytest.fail(
                f"{block.where}: exit status {done.returncode}\n--- example\n{block.code}"
                f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
            )
        return done.stdout

    def run_python(self, block: Block) -> str:
        code = compile("\n" * block.line + block.code, block.where, "exec")
        out = io.StringIO()
        cwd = Path.cwd()
        try:
            with mock.patch.dict(os.environ, self.shell_env(), clear=True):
                os.chdir(self.workdir)
                with contextlib.redirect_stdout(out):
                    exec(code, self.namespace)
        except Exception:
            pytest.fail(
                f"{block.where}: raised\n{traceback.format_exc()}--- stdout\n{out.getvalue()}"
            )
        finally:
            os.chdir(cwd)
        return out.getvalue()


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`pushgate serve --emulate` on a temp data dir (the embedded default the docs describe)."""
    srv = Server(tmp_path_factory.mktemp("docs") / "data").start()
    yield srv
    srv.stop()


RUNNABLE_PAGES = [p for p in pages() if any(b.runs for b in page_blocks(p))]


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=page_id)
def test_the_examples_of_the_page_run_and_print_what_it_shows(
    page: Path, docs_server: Server, tmp_path: Path
) -> None:
    for tool in ("bash", "curl", "jq"):
        assert shutil.which(tool), f"the shell examples need {tool} on PATH"
    partner = docs_server.create_partner(f"docs-{page.stem}")
    env = process_env(
        {},
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PUSHGATE_URL": docs_server.base_url,
            "PUSHGATE_DATA_DIR": str(docs_server.data_dir),
            "PARTNER": partner.name,
            "API_KEY": partner.api_key,
            "REQUEST_TOKEN": partner.request_token,
            "SDK_KEY": partner.sdk_key,
        },
    )
    session = PageSession(tmp_path, env)
    try:
        for block in page_blocks(page):
            if block.runs:
                output = session.run(block)
                if block.output is not None:
                    check_output(block, output)
    finally:
        session.close()


@pytest.mark.parametrize("page", pages(), ids=page_id)
def test_every_example_is_run_or_says_why_not(page: Path) -> None:
    blocks = page_blocks(page)
    for n, block in enumerate(blocks):
        assert block.lang not in REFUSED_LANGUAGES, (
            f"{block.where}: ```{block.lang} is neither run nor data: use sh or python"
        )
        if block.not_run is not None:
            assert block.not_run.strip(), f"{block.where}: <!-- not-run: --> needs a reason"
            if block.lang in ("sh", "bash"):
                check = subprocess.run(
                    ["bash", "-n"], input=block.code.encode(), capture_output=True
                )
                assert check.returncode == 0, f"{block.where}: {check.stderr.decode()}"
            elif block.lang == "python":
                compile(block.code, block.where, "exec")
        if block.is_output:
            previous = blocks[n - 1] if n else None
            assert previous is not None and previous.runs and previous.output is block, (
                f"{block.where}: an Output block must follow an example that runs"
            )
            assert block.lang in ("json", "text"), f"{block.where}: Output is json or text"
            if block.lang == "json":
                json_values(block.code)


def test_the_site_builds_with_strict(tmp_path: Path) -> None:
    missing = [m for m in ("mkdocs", "material") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: pip install -e '.[docs]'")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # Material's notice about MkDocs 2
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").exists()


def test_the_wildcards_of_expected_output() -> None:
    assert mismatch({"a": "...", "b": [1, "..."]}, {"a": {"x": 1}, "b": [1, 2, 3]}) is None
    assert mismatch({"a": 1, "...": "..."}, {"a": 1, "b": 2}) is None
    assert mismatch({"a": 1}, {"a": 1, "b": 2}) is not None
    assert mismatch({"t": "pgk_..."}, {"t": "pgk_abc"}) is None
    assert mismatch({"t": "pgk_..."}, {"t": "pgs_abc"}) is not None
    assert mismatch([1, 2], [1, 2, 3]) is not None
    assert mismatch(1, 1.0) is None and mismatch(True, 1) is not None
    assert json_values('{"a": 1}\n[2]') == [{"a": 1}, [2]]
    assert json_values("200\n{'ok': True, 'n': None}") == [200, {"ok": True, "n": None}]
    assert text_matches("started ... on port ...", "started pushgate on port 8080")
