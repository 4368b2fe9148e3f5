"""Every code example of README.md and docs/**/*.md runs.

Conventions (also stated in docs/index.md, "Code examples are tested"):

- Each page's fenced ```python blocks run in document order in one namespace, in a fresh
  temporary working directory that holds a link to the repository's ``registry/`` (examples are
  written as if run from a checkout's root), with ``MLFLOW_TRACKING_URI`` pointed at a temporary
  SQLite store in which a tiny Drell-Yan cINN is registered as
  ``memzoo-drell-yan-cinn@champion`` (trained for real by a module fixture).
- ```bash / ```console blocks whose every command is ``memzoo ...`` are memzoo CLI examples:
  they run in the same directory, in order with the page's Python blocks (console blocks: the
  lines starting with ``$ ``). A shell block mixing memzoo and other commands must be split or
  marked.
- A fence with ``title="path"`` is a file the reader writes: it is written to that path in the
  working directory (which is on ``sys.path``) instead of being run.
- ``<!-- docs-test: no-run REASON -->`` right before a fence shows a block without running it
  (keep these rare: prefer a cheap variant); ``<!-- docs-test: gpu -->`` runs it only where
  CUDA is available.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAMPION = "memzoo-drell-yan-cinn"
PYTHON = ("python", "py")
SHELL = ("bash", "sh", "shell", "console")

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^`\n]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
MARKER = re.compile(r"<!--\s*docs-test:\s*(?P<what>[\w-]+)\s*(?P<reason>.*?)-->\s*\Z", re.S)
TITLE = re.compile(r"""title\s*=\s*["'](?P<title>[^"']+)["']""")


@dataclass
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int
    lang: str
    info: str
    code: str
    marker: str | None
    reason: str

    @property
    def title(self) -> str | None:
        m = TITLE.search(self.info)
        return m.group("title") if m else None

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"

    def commands(self) -> list[str]:
        """Shell commands of a bash/console block (continuations joined, comments dropped)."""
        joined, current, inside = [], "", False
        for ln in self.code.splitlines():
            if self.lang == "console" and not inside:
                if not ln.startswith("$ "):
                    continue  # output
                ln = ln[2:]
            inside = ln.rstrip().endswith("\\")
            current += ln
            if current.rstrip().endswith("\\"):
                current = current.rstrip()[:-1] + " "
                continue
            if current.strip() and not current.strip().startswith("#"):
                joined.append(current.strip())
            current = ""
        return joined


def blocks_of(page: Path, text: str | None = None) -> list[Block]:
    """The fenced code blocks of a markdown page (or of ``text``) with their markers."""
    text = page.read_text() if text is None else text
    out = []
    for m in FENCE.finditer(text):
        info = m.group("info").strip()
        lang = info.split()[0].lstrip(".{").lower() if info else ""
        code = "\n".join(ln[len(m.group("indent")) :] for ln in m.group("body").splitlines())
        marker = MARKER.search(text[: m.start()].rstrip() + "\n")
        out.append(
            Block(
                page=page,
                line=text.count("\n", 0, m.start()) + 1,
                lang=lang,
                info=info,
                code=code,
                marker=marker.group("what") if marker else None,
                reason=marker.group("reason").strip() if marker else "",
            )
        )
    return out


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def is_cli(block: Block) -> bool:
    cmds = block.commands()
    return bool(cmds) and all(c.split()[0] == "memzoo" for c in cmds)


def runnable(block: Block) -> bool:
    if block.marker == "no-run":
        return False
    if block.title:
        return True  # written to disk
    return block.lang in PYTHON or (block.lang in SHELL and is_cli(block))


# ---------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_mlflow(tmp_path_factory):
    """A temporary SQLite MLflow store in MLFLOW_TRACKING_URI; the previous state is restored."""
    import mlflow

    from memzoo import tracking

    root = tmp_path_factory.mktemp("docs-mlflow")
    old_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_DISABLE_TELEMETRY", "MPLBACKEND")}
    old_uri, old_registry, old_state = mlflow.get_tracking_uri(), mlflow.get_registry_uri(), dict(tracking._STATE)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["MPLBACKEND"] = "Agg"
    tracking.configure_tracking()
    yield root
    for key, value in old_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    mlflow.set_tracking_uri(old_uri)
    mlflow.set_registry_uri(old_registry)
    tracking._STATE.clear()
    tracking._STATE.update(old_state)


@pytest.fixture(scope="module")
def champion(docs_mlflow):
    """A tiny Drell-Yan cINN bundle, trained for real, registered as memzoo-drell-yan-cinn@champion."""
    from memzoo.train_job import train_card

    text = (ROOT / "registry" / "drell-yan" / "cinn.toml").read_text()
    for old, new in [
        ("events = 60000", "events = 1500"),
        ("chunk_size = 10000", "chunk_size = 1500"),
        ("epochs = 15", "epochs = 1"),
        ("epochs = 40", "epochs = 1"),
    ]:
        assert old in text, f"registry/drell-yan/cinn.toml changed: update the docs fixture ({old!r})"
        text = text.replace(old, new)
    card = docs_mlflow / "cinn.toml"
    card.write_text(text)
    out = train_card(card, size="small", root=docs_mlflow / "memzoo-runs", alias="champion", progress=False)
    return out["uri"]


# ---------------------------------------------------------------------------------------
# running a page
# ---------------------------------------------------------------------------------------


def run_cli(block: Block, command: str) -> None:
    from memzoo.cli import main

    argv = shlex.split(command, comments=True)[1:]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    assert code == 0, f"{block.where}: `{command}` exited with {code}"


def run_page(page: Path, cwd: Path) -> int:
    """Run the page's examples in ``cwd``; returns the number of blocks run."""
    (cwd / "registry").symlink_to(ROOT / "registry")
    # a real module, so that dataclasses, pickling of test objects etc. find the page's namespace
    module = types.ModuleType("docs_example_" + re.sub(r"\W", "_", page.stem))
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    ran = 0
    try:
        for block in blocks_of(page):
            if not runnable(block) or (block.marker == "gpu" and not _has_cuda()):
                continue
            if block.title:
                target = cwd / block.title
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.code + "\n")
            elif block.lang in PYTHON:
                exec(compile(block.code, block.where, "exec"), namespace)
            else:
                for command in block.commands():
                    run_cli(block, command)
            ran += 1
    finally:
        sys.modules.pop(module.__name__, None)
    return ran


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_page_examples_run(page, tmp_path, monkeypatch, request, docs_mlflow):
    """Each page's examples run top to bottom (see the module docstring for the conventions)."""
    if CHAMPION in page.read_text():
        request.getfixturevalue("champion")  # trained once, for the pages that use it
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    try:
        run_page(page, tmp_path)
    finally:
        for name in set(sys.modules) - before:
            if str(tmp_path) in str(getattr(sys.modules[name], "__file__", "") or ""):
                del sys.modules[name]


def test_shell_blocks_are_cli_examples_or_marked():
    """A shell block either is a pure memzoo CLI example (run), has no memzoo command, or is marked."""
    bad = []
    for page in pages():
        for block in blocks_of(page):
            if block.lang not in SHELL or block.marker or block.title:
                continue
            cmds = block.commands()
            if any(c.split()[0] == "memzoo" for c in cmds) and not is_cli(block):
                bad.append(block.where)
    assert not bad, f"shell blocks mixing memzoo and other commands (split them or mark them no-run): {bad}"


def test_skipped_blocks_are_rare_and_explained():
    """no-run markers carry a reason, and most runnable-language blocks do run."""
    total, skipped = 0, []
    for page in pages():
        for block in blocks_of(page):
            if block.lang not in PYTHON + SHELL:
                continue
            total += 1
            if block.marker == "no-run":
                assert block.reason, f"{block.where}: say why the block is not run (<!-- docs-test: no-run REASON -->)"
                skipped.append(block.where)
    assert total > 20, "the fence parser found too few code blocks"
    assert len(skipped) <= max(3, total // 6), f"too many examples are not run: {skipped}"


def test_fence_parser():
    """Markers, titles, console prompts and continuation lines are read as documented."""
    text = (
        "Intro\n\n<!-- docs-test: no-run needs a 200k-event file -->\n```python\nx = 1\n```\n\n"
        '```python title="pkg/mod.py"\ny = 2\n```\n\n```console\n$ memzoo plugins \\\n  --json\n[]\n```\n'
        "\n```bash\nmake demo  # not a memzoo command\n```\n"
    )
    blocks = blocks_of(Path("check.md"), text)
    assert [b.lang for b in blocks] == ["python", "python", "console", "bash"]
    assert (blocks[0].marker, blocks[0].reason) == ("no-run", "needs a 200k-event file")
    assert not runnable(blocks[0]) and blocks[1].title == "pkg/mod.py" and runnable(blocks[1])
    assert [shlex.split(c) for c in blocks[2].commands()] == [["memzoo", "plugins", "--json"]] and runnable(blocks[2])
    assert blocks[3].marker is None and not runnable(blocks[3])
    assert [b.line for b in blocks] == [4, 8, 12, 18]


def test_backends_page_is_the_generated_table():
    """docs/backends.md holds exactly `memzoo backends --markdown` between its markers."""
    from memzoo.cli import backends_markdown

    text = (ROOT / "docs" / "backends.md").read_text()
    table = re.search(r"<!-- backends:start -->\n(.*?)\n<!-- backends:end -->", text, re.S)
    assert table, "docs/backends.md lost its backend table markers"
    assert table.group(1) == backends_markdown(), "docs/backends.md is stale: paste `memzoo backends --markdown`"
