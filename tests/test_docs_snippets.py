"""Every ```bash, ```sh and ```python block in README.md and docs/**/*.md runs, in page order, on
bundled data in a fresh folder laid out like a clone (examples/ copied in, no shared data folder).

Conventions a page may use, each an HTML comment on the line before a fence:

* ``<!-- skip: why, and where to get what it needs -->``: the block is not run (a GPU, a large
  download, a second machine); the reason must say where to get what is missing.
* ``<!-- file: NAME -->`` before any fence: its text is written to NAME in the folder, as the
  page tells the reader to save it.

A page holding ``<!-- setup: tutorial -->`` runs where the tour's data already is: ``my-data/``
(``python examples/data/make_digits.py --png my-data`` plus ``my-data/splits.csv``) and a model
trained on it in ``runs/digits/`` (the README's train.toml, 2 epochs). A page whose blocks
train, or holding ``<!-- test: slow -->`` (blocks that take more than ~20 s), is a slow test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN = {"bash", "sh", "python"}
_FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*(skip|file)\s*:\s*(.*?)\s*-->\s*$")
# A block that trains a model makes its page a slow test.
_TRAINS = re.compile(r"labelwise (train|demo)\b|\.fit\(|run_demo\(|labelwise\.train\(")
# Wording for the team, not for a reader.
INTERNAL = re.compile(r"measured on this change|the issue|dev(elopment)? machine|\.\./shared|\bissue \d+|"
                      r"before this round|our machines", re.I)

TUTORIAL_TOML = """\
table = "my-data/labels.csv"
images = "my-data/images"
splits = "my-data/splits.csv"
backbone = "small_cnn"
weights = "none"
image_size = [28, 28]
channels = 1
epochs = 2
batch_size = 16
bootstrap = 0
plots = false
verbose = 0
out_dir = "runs/digits"
"""


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    code: str
    skip: str | None = None
    file: str | None = None

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, with the directive on the line before each."""
    out, lines, i = [], page.read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = m.group(1), m.group(2).lower(), i
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        block = Block(page, start + 1, lang, "\n".join(body) + "\n")
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        d = _DIRECTIVE.match(lines[j]) if j >= 0 else None
        if d and d.group(1) == "skip":
            block.skip = d.group(2)
        elif d and d.group(1) == "file":
            block.file = d.group(2)
        out.append(block)
    return out


def _needs_tutorial(page: Path) -> bool:
    return any(line.strip() == "<!-- setup: tutorial -->" for line in page.read_text(encoding="utf-8").splitlines())


def _is_slow(page: Path) -> bool:
    marked = any(line.strip() == "<!-- test: slow -->" for line in page.read_text(encoding="utf-8").splitlines())
    return marked or _needs_tutorial(page) or any(
        b.lang in RUN and not b.skip and _TRAINS.search(b.code) for b in blocks(page))


def _env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LABELWISE_SHARED_DATA", "KERAS_BACKEND")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    env["MPLBACKEND"] = "Agg"
    return env


def _workspace(tmp: Path) -> tuple[Path, dict[str, str]]:
    """A folder like a fresh clone's root (examples/ only) and an environment whose `labelwise`
    and `python` run this checkout."""
    work = tmp / "clone"
    shutil.copytree(ROOT / "examples", work / "examples",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "labelwise"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m labelwise "$@"\n')
    shim.chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    return work, _env(bin_dir)


def run_block(block: Block, cwd: Path, env: dict[str, str]) -> None:
    if block.lang == "python":
        script = cwd / "_snippet.py"
        script.write_text(block.code, encoding="utf-8")
        cmd = [sys.executable, str(script)]
    else:
        cmd = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        pytest.fail(f"{block.where}: the {block.lang} block exited {done.returncode}\n--- block\n{block.code}"
                    f"--- stdout (end)\n{done.stdout[-3000:]}\n--- stderr (end)\n{done.stderr[-3000:]}")


@pytest.fixture(scope="session")
def tutorial(tmp_path_factory) -> Path:
    """The tour's data and a model trained on it, built once per session."""
    tmp = tmp_path_factory.mktemp("tutorial")
    work, env = _workspace(tmp)
    (work / "train.toml").write_text(TUTORIAL_TOML)
    code = ("python examples/data/make_digits.py --png my-data\n"
            "labelwise split my-data/labels.csv --no-groups --out my-data/splits.csv\n"
            "labelwise train train.toml\n")
    run_block(Block(tmp / "tutorial.md", 1, "bash", code), work, env)
    return work


def _params():
    for page in PAGES:
        marks = [pytest.mark.slow] if _is_slow(page) else []
        yield pytest.param(page, id=page.relative_to(ROOT).as_posix(), marks=marks)


@pytest.mark.parametrize("page", list(_params()))
def test_page_blocks_run(page, tmp_path, request):
    todo = [b for b in blocks(page) if (b.lang in RUN and not b.skip) or b.file]
    if not todo:
        pytest.skip("no block to run on this page")
    work, env = _workspace(tmp_path)
    if _needs_tutorial(page):
        built = request.getfixturevalue("tutorial")
        for name in ("my-data", "runs"):
            shutil.copytree(built / name, work / name)
    for block in todo:
        if block.file:
            target = work / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code, encoding="utf-8")
        else:
            run_block(block, work, env)
    if page.name == "README.md":
        _assert_outputs_are_ignored(work)


def _assert_outputs_are_ignored(work: Path) -> None:
    """What the README's commands write into a checkout is covered by .gitignore."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return
    written = [p.name + ("/" if p.is_dir() else "") for p in work.iterdir() if p.name not in ("examples", "_snippet.py")]
    done = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "--no-index", *written],
                          capture_output=True, text=True)
    ignored = set(done.stdout.split())
    assert not [w for w in written if w not in ignored], f"not in .gitignore: {sorted(set(written) - ignored)}"


def test_skipped_blocks_say_why_and_where_to_get_what_they_need():
    bad = []
    for page in PAGES:
        for b in blocks(page):
            if b.skip is not None and not re.search(r"\b(from|see|install|https?://)\b|\.ci/", b.skip):
                bad.append(f"{b.where}: skip reason {b.skip!r} does not say where to get what it needs")
    assert not bad, "\n".join(bad)


def test_the_collector_reads_fences_and_directives(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n<!-- skip: needs a GPU, see docs -->\n```bash\nnvidia-smi\n```\n\n"
                    "- item\n\n  ```python\n  x = 1\n  ```\n\n<!-- file: a.toml -->\n```toml\nk = 1\n```\n"
                    "```text\nout\n```\n")
    found = blocks(page)
    assert [(b.lang, b.code, b.skip, b.file) for b in found] == [
        ("bash", "nvidia-smi\n", "needs a GPU, see docs", None),
        ("python", "x = 1\n", None, None),
        ("toml", "k = 1\n", None, "a.toml"),
        ("text", "out\n", None, None),
    ]


def test_a_failing_block_fails_the_test(tmp_path):
    work, env = _workspace(tmp_path)
    with pytest.raises(pytest.fail.Exception, match="exited 3"):
        run_block(Block(tmp_path / "p.md", 1, "bash", "true\nexit 3\n"), work, env)
    with pytest.raises(pytest.fail.Exception, match="NameError"):
        run_block(Block(tmp_path / "p.md", 1, "python", "print(y_true)\n"), work, env)


def test_pages_speak_to_users_not_to_the_team():
    bad = []
    for page in PAGES:
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if INTERNAL.search(line):
                bad.append(f"{page.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not bad, "\n".join(bad)


def test_readme_is_a_front_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert "pip install -e . && labelwise demo --out labelwise-demo\n" in readme
    image = re.search(r"!\[[^\]]*\]\((docs/img/[^)]+\.png)\)", readme)
    assert image and (ROOT / image.group(1)).is_file()
    assert (ROOT / image.group(1)).stat().st_size < 400_000
