"""Following docs/howto/write-plugin.md from scratch gives a working third-party backend.

The files the page tells the reader to write are the fences with ``title="path"``; they are
written to a temporary folder, pip-installed (``--no-deps --no-build-isolation``, offline), and
then ``memzoo plugins --json`` must list the plugin and the page's conformance tests must pass.
The distribution is installed into a private ``--target`` folder put on ``PYTHONPATH`` of the
subprocesses rather than into the shared virtual environment, so that concurrent test runs never
see a half-installed plugin and nothing is left behind (entry points are discovered from any
``sys.path`` entry, so this exercises the same packaging metadata as ``pip install -e``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "howto" / "write-plugin.md"
FENCE = re.compile(r"^```(?P<info>[^`\n]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
TITLE = re.compile(r"""title\s*=\s*["'](?P<title>[^"']+)["']""")


def howto_files() -> dict[str, str]:
    """path -> content of every fence with a title="path" attribute on the how-to page."""
    files = {}
    for m in FENCE.finditer(PAGE.read_text()):
        title = TITLE.search(m.group("info"))
        if title:
            files[title.group("title")] = m.group("body")
    return files


def run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """The how-to's distribution written out and pip-installed; yields (folder, env)."""
    tmp = tmp_path_factory.mktemp("plugin-howto")
    files = howto_files()
    projects = {Path(p).parts[0] for p in files if p.endswith("pyproject.toml")}
    assert projects == {"memzoo-smearing"}, f"the how-to should write one distribution, found {projects}"
    for path, text in files.items():
        target = tmp / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    site = tmp / "site-packages"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", OMP_NUM_THREADS="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("MEMZOO_DISABLE_PLUGINS", None)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    out = run([*pip, "--target", str(site), str(tmp / "memzoo-smearing")], env, tmp)
    assert out.returncode == 0, f"pip install of the how-to's plugin failed:\n{out.stdout}\n{out.stderr}"
    return tmp, env


def test_howto_writes_the_files_it_lists():
    """The page's file tree and its titled fences name the same files."""
    assert set(howto_files()) == {
        "memzoo-smearing/pyproject.toml",
        "memzoo-smearing/memzoo_smearing/__init__.py",
        "memzoo-smearing/tests/test_conformance.py",
    }


def test_memzoo_plugins_lists_the_howto_plugin(installed_plugin):
    tmp, env = installed_plugin
    out = run([str(Path(sys.executable).parent / "memzoo"), "plugins", "--json"], env, tmp)
    assert out.returncode == 0, out.stderr
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert "smearing" in plugins, f"memzoo plugins does not list the how-to's plugin: {sorted(plugins)}"
    entry = plugins["smearing"]
    assert entry["distribution"] == "memzoo-smearing" and entry["version"] == "0.1.0"
    assert entry["provides"] == {"transfer": ["lognormal-muon"]}


def test_conformance_suite_passes_on_the_howto_plugin(installed_plugin):
    tmp, env = installed_plugin
    tests = tmp / "memzoo-smearing" / "tests"
    out = run(
        [sys.executable, "-m", "pytest", str(tests), "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp)], env, tmp
    )
    assert out.returncode == 0, f"the how-to's tests fail:\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}"
    passed = re.search(r"(\d+) passed", out.stdout)
    # TransferModelSuite contributes conformance, normalisation and round trip; the page adds one test
    assert passed and int(passed.group(1)) == 4, out.stdout[-2000:]
