"""Every command block of the README runs against a live service, so the examples cannot rot.

Blocks fenced ```sh or ```python run in order, from a scratch directory that mirrors the
repository (files they write stay out of the checkout), with the venv's commands first on
PATH and `127.0.0.1:8008` pointed at a service started for this test. A block that cannot run
here is preceded by `<!-- readme-test: skip <reason> -->`, and the reason is required.
A block passes when it exits 0 and prints no error body of the service."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.processes import REPO_ROOT, start_service

pytestmark = pytest.mark.slow

README = REPO_ROOT / "README.md"
BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<directive>[^\n]*?) -->\n)?"
    r"^```(?P<lang>sh|python)\n(?P<code>.*?)^```",
    re.S | re.M,
)
BLOCK_TIMEOUT_S = 180
ERROR_BODY = re.compile(r'"detail"\s*:\s*\[')


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    code: str
    skip: str | None

    @property
    def name(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def blocks() -> list[Block]:
    text = README.read_text()
    found = []
    for m in BLOCK.finditer(text):
        directive = m.group("directive")
        skip = None
        if directive is not None:
            kind, _, reason = directive.partition(" ")
            assert kind == "skip" and reason.strip(), f"bad readme-test directive {directive!r}"
            skip = reason.strip()
        line = text.count("\n", 0, m.start("code"))
        found.append(Block(line, m.group("lang"), m.group("code"), skip))
    return found


def test_the_readme_has_runnable_blocks_of_both_kinds() -> None:
    runnable = [b for b in blocks() if b.skip is None]
    assert {b.lang for b in runnable} == {"sh", "python"}
    assert len(runnable) >= 6, [b.name for b in runnable]


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    with start_service() as url:
        yield url


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose entries link to the repository's (tests/fixtures, config.yaml, ...)."""
    root = tmp_path_factory.mktemp("readme")
    for entry in REPO_ROOT.iterdir():
        if entry.name not in (".git", ".venv"):
            (root / entry.name).symlink_to(entry)
    return root


def run_block(block: Block, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = block.code.replace("http://127.0.0.1:8008", url).replace("127.0.0.1:8008", url[7:])
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}", "TWIN_URL": url}
    env = {k: v for k, v in env.items() if k not in ("TWIN_API_KEY", "TWIN_READ_KEY")}
    argv = (
        ["bash", "-euo", "pipefail", "-c", code]
        if block.lang == "sh"
        else [sys.executable, "-c", code]
    )
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S
    )


@pytest.mark.parametrize("block", blocks(), ids=lambda b: b.name)
def test_readme_block_runs(block: Block, service: str, scratch: Path) -> None:
    if block.skip is not None:
        pytest.skip(block.skip)
    result = run_block(block, service, scratch)
    output = f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    assert result.returncode == 0, f"{block.name} exited {result.returncode}\n{output}"
    assert not ERROR_BODY.search(result.stdout), f"{block.name} printed an error\n{output}"
