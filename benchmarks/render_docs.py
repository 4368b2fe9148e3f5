"""Rewrite the tables and machine lines of ``docs/benchmarks.md`` from ``benchmarks/results/*.json``.

Usage: ``python -m benchmarks.render_docs [--check] [--doc docs/benchmarks.md] [--results benchmarks/results]``.

The page keeps its prose; what the benchmarks measured sits between markers, which this script
fills in from the JSON files the ``benchmarks/bench_*.py`` scripts write
(:mod:`benchmarks._common`)::

    <!-- bench-table: pdf/throughput -->
    | implementation | ... |            (the rows of table "throughput" of results/pdf.json)
    <!-- /bench-table -->

    <!-- bench-machine: pdf -->Machine: ...<!-- /bench-machine -->

``--check`` renders without writing and exits with status 1, naming every stale block, when the
page differs from what it would render (CI runs it, so a changed JSON without re-rendering fails).
A marker whose JSON file or table is missing is an error naming the command that writes it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RenderError", "main", "render", "render_machine", "render_table", "stale_blocks"]

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "benchmarks" / "results"

TABLE = re.compile(r"(<!-- bench-table: (?P<key>[\w.-]+/[\w.-]+) -->\n)(?P<body>.*?)(<!-- /bench-table -->)", re.S)
MACHINE = re.compile(r"(<!-- bench-machine: (?P<key>[\w.-]+) -->)(?P<body>.*?)(<!-- /bench-machine -->)", re.S)


class RenderError(ValueError):
    """A marker that cannot be rendered (missing or malformed results file, unknown table)."""


def _writer(name: str) -> str:
    """The command that writes ``results/<name>.json`` (``accuracy_thj`` → ``bench_accuracy.py``)."""
    for stem in (name, name.split("_")[0]):
        script = ROOT / "benchmarks" / f"bench_{stem}.py"
        if script.is_file():
            extra = " ... --name " + name if stem != name else ""
            return f"python benchmarks/bench_{stem}.py{extra}"
    return f"the benchmark that writes {name}.json"


@dataclass
class _Results:
    directory: Path

    def load(self, name: str) -> dict:
        path = self.directory / f"{name}.json"
        if not path.is_file():
            raise RenderError(
                f"{path} is missing: run `{_writer(name)}` (it writes that file), "
                "then `python -m benchmarks.render_docs`."
            )
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise RenderError(f"{path} is not valid JSON ({err}); re-run `{_writer(name)}`.") from err
        for key in ("tables", "machine", "date", "command"):
            if key not in doc:
                raise RenderError(f"{path} lacks {key!r}; re-run `{_writer(name)}`.")
        return doc


def render_table(table: dict) -> str:
    """A Markdown table (with trailing newline) from ``{"columns": [...], "rows": [[...], ...]}``."""
    cell = lambda c: str(c).replace("|", "\\|")
    lines = ["| " + " | ".join(cell(c) for c in table["columns"]) + " |"]
    lines.append("| " + " | ".join("---" for _ in table["columns"]) + " |")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table["rows"]]
    return "\n".join(lines) + "\n"


def render_machine(doc: dict) -> str:
    """One sentence: the machine, the load around the run, the date and the exact command."""
    m = doc["machine"]
    parts = [f"{m.get('cores')}-core {m.get('cpu')}"]
    if m.get("memory_gib"):
        parts.append(f"{m['memory_gib']:g} GiB")
    parts.append(f"torch {m.get('torch')}")
    if str(m.get("device", "cpu")) != "cpu":
        parts.append(f"device {m['device']}")
    threads = m.get("threads")
    parts.append(f"{threads} thread" + ("s" if threads != 1 else ""))
    if m.get("load_before") is not None and m.get("load_after") is not None:
        parts.append(f"1-min load average {m['load_before']:.1f} before, {m['load_after']:.1f} after")
    return f"Machine: {', '.join(parts)}; {doc['date']}; `{doc['command']}`."


def _blocks(text: str, results: _Results):
    """``(kind, key, start, end, current body, rendered body)`` of every marker block."""
    cache: dict[str, dict] = {}

    def load(name: str) -> dict:
        if name not in cache:
            cache[name] = results.load(name)
        return cache[name]

    for match in TABLE.finditer(text):
        name, table_id = match["key"].split("/")
        doc = load(name)
        if table_id not in doc["tables"]:
            raise RenderError(
                f"{results.directory / (name + '.json')} has no table {table_id!r} (it has {sorted(doc['tables'])}); "
                f"fix the marker `bench-table: {match['key']}` or re-run `{_writer(name)}`."
            )
        yield (
            "bench-table",
            match["key"],
            match.start("body"),
            match.end("body"),
            match["body"],
            render_table(doc["tables"][table_id]),
        )
    for match in MACHINE.finditer(text):
        doc = load(match["key"])
        yield "bench-machine", match["key"], match.start("body"), match.end("body"), match["body"], render_machine(doc)


def render(text: str, results_dir: str | Path = RESULTS) -> str:
    """``text`` with every marker block rewritten from the JSON files in ``results_dir``."""
    blocks = sorted(_blocks(text, _Results(Path(results_dir))), key=lambda b: b[2])
    out, pos = [], 0
    for _, _, start, end, _, body in blocks:
        out += [text[pos:start], body]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def stale_blocks(text: str, results_dir: str | Path = RESULTS) -> list[str]:
    """The blocks (``"bench-table: pdf/throughput"``) whose content differs from their JSON."""
    return [
        f"{kind}: {key}" for kind, key, _, _, body, new in _blocks(text, _Results(Path(results_dir))) if body != new
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the page is stale")
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    text = args.doc.read_text()
    try:
        stale = stale_blocks(text, args.results)
        new = render(text, args.results)
    except RenderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.check:
        if stale:
            print(
                f"{args.doc} is stale; run `python -m benchmarks.render_docs`. Blocks that differ from "
                f"{args.results}: " + ", ".join(stale),
                file=sys.stderr,
            )
            return 1
        print(f"{args.doc} is up to date ({len(TABLE.findall(text))} tables).")
        return 0
    if new != text:
        args.doc.write_text(new)
    print(f"rendered {args.doc}" + (f" ({', '.join(stale)})" if stale else " (no change)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
