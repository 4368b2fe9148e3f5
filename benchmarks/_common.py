"""What every benchmark script shares: the JSON results file, the machine record and the timer.

Each ``benchmarks/bench_*.py`` prints its tables and writes them, formatted exactly as printed,
to ``benchmarks/results/<name>.json`` (``--json PATH`` elsewhere, ``--no-json`` not at all).
``python -m benchmarks.render_docs`` then rewrites the tables of ``docs/benchmarks.md`` from
those files. Schema (version 1)::

    {"benchmark": name, "command": "python benchmarks/bench_x.py --opt ...",
     "machine": {"cpu", "cores", "memory_gib", "torch", "device", "threads",
                 "load_before", "load_after"},
     "date": "YYYY-MM-DD",
     "tables": {table_id: {"columns": [...], "rows": [[...], ...]}},
     "notes": {free numbers}}
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS",
    "Recorder",
    "add_json_arguments",
    "best_throughput",
    "command_line",
    "machine_info",
    "sig",
    "write_result",
]

ROOT = Path(__file__).resolve().parents[1]
#: Where the results files live (one per benchmark name).
RESULTS = ROOT / "benchmarks" / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine_info(device: str = "cpu", load_before: float | None = None) -> dict[str, Any]:
    """The machine a benchmark ran on, with the 1-minute load average before and now."""
    import torch

    dev = str(device)
    if dev.startswith("cuda") and torch.cuda.is_available():
        dev = f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "torch": torch.__version__,
        "device": dev,
        "threads": torch.get_num_threads(),
        "load_before": load_before,
        "load_after": _load(),
    }


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that ran this script, as one would type it from the repository root."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]) if argv else Path("?")
    try:
        script = script.resolve().relative_to(ROOT)
    except ValueError:
        pass
    return shlex.join(["python", str(script), *argv[1:]])


def write_result(
    name: str,
    tables: dict[str, dict[str, list]],
    meta: dict[str, Any] | None = None,
    path: str | Path | None = None,
) -> Path:
    """Write ``benchmarks/results/<name>.json`` (or ``path``) in the schema of the module docstring.

    Args:
        name: the benchmark (``bench_pdf.py`` → ``"pdf"``).
        tables: ``{table_id: {"columns": [...], "rows": [[cell, ...], ...]}}``; cells are the
            strings the script printed (numbers are turned into strings as they are).
        meta: ``machine`` (default :func:`machine_info`), ``command`` (default the running
            command line), ``date`` (default today), ``notes`` (free numbers), ``device``
            and ``load_before`` (passed to :func:`machine_info`).
        path: the output file.

    Raises:
        ValueError: naming the table whose rows do not match its columns.
    """
    meta = dict(meta or {})
    clean = {}
    for table_id, table in tables.items():
        columns = [str(c) for c in table["columns"]]
        rows = [[str(c) for c in row] for row in table["rows"]]
        for row in rows:
            if len(row) != len(columns):
                raise ValueError(f"Table {table_id!r} of {name}: row {row} has {len(row)} cells, not {len(columns)}.")
        clean[table_id] = {"columns": columns, "rows": rows}
    machine = meta.get("machine") or machine_info(meta.get("device", "cpu"), meta.get("load_before"))
    doc = {
        "benchmark": name,
        "command": meta.get("command") or command_line(),
        "machine": machine,
        "date": meta.get("date") or datetime.date.today().isoformat(),
        "tables": clean,
        "notes": meta.get("notes", {}),
    }
    out = Path(path) if path is not None else RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return out


def add_json_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """``--json PATH`` (default ``benchmarks/results/<name>.json``) and ``--no-json``."""
    parser.add_argument("--json", default=str(RESULTS / f"{name}.json"), help="results file (default: %(default)s)")
    parser.add_argument("--no-json", action="store_true", help="print only, write no results file")


class Recorder:
    """Collects a script's tables and writes them at the end (unless ``--no-json``).

    Example:
        >>> rec = Recorder("demo", json=None)
        >>> rec.table("t", ["a", "b"]).append(["1", "2"])
        >>> rec.tables["t"]["rows"]
        [['1', '2']]
    """

    def __init__(self, name: str, json: str | None, device: str = "cpu") -> None:
        self.name, self.path, self.device = name, json, device
        self.load_before = _load()
        self.tables: dict[str, dict[str, list]] = {}
        self.notes: dict[str, Any] = {}

    @classmethod
    def from_args(cls, name: str, args: argparse.Namespace, device: str = "cpu") -> Recorder:
        return cls(name, None if args.no_json else args.json, device)

    def table(self, table_id: str, columns: Sequence[str]) -> list[list[str]]:
        """A new table; returns its list of rows to append to."""
        self.tables[table_id] = {"columns": list(columns), "rows": []}
        return self.tables[table_id]["rows"]

    def write(self) -> Path | None:
        if self.path is None:
            return None
        meta = {"device": self.device, "load_before": self.load_before, "notes": self.notes}
        out = write_result(self.name, self.tables, meta, self.path)
        print(f"wrote {out}")
        return out


def sig(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant figures as the docs write it: 1.24e4, 430, 0.73, 8.8."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    text = f"{value:.{digits}g}"
    if "e" in text:
        mantissa, exp = text.split("e")
        if 0 <= int(exp) < 3:  # 5.3e+02 -> 530
            return f"{float(text):.0f}"
        return f"{mantissa}e{int(exp)}"
    return text


def best_throughput(fn: Callable[[], object], n_items: int, repeats: int, cuda: bool = False) -> float:
    """Best-of-``repeats`` items per second of ``fn()`` (one warm-up call is the caller's job).

    With ``cuda`` the device is synchronised before and after each call, so that queued
    kernels are inside the timing.
    """
    import torch

    best = math.inf
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        tick = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - tick)
    return n_items / best
