"""The ``memzoo`` command, run as an installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from memzoo.cli import main

MEMZOO = shutil.which("memzoo", path=os.path.dirname(sys.executable)) or "memzoo"


def run(*args, cwd=None, env=None):
    return subprocess.run([MEMZOO, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_plugins_json_lists_builtins_and_test_plugin():
    out = run("plugins", "--json")
    assert out.returncode == 0, out.stderr
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert plugins["memzoo"]["provides"]["acceptance"] == ["constant", "mlp", "parametric-exact"]
    assert plugins["toy"]["distribution"] == "memzoo-toyplugin"
    assert plugins["toy"]["provides"]["transfer"] == ["toy-smear"]
    table = run("plugins").stdout
    assert "memzoo-toyplugin" in table and "transfer: toy-smear" in table


def test_backends_pattern(capsys):
    assert main(["backends", "toy-*", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["transfer"] == ["toy-smear"] and data["acceptance"] == ["toy-turn-on"]
    assert main(["backends", "--kind", "acceptance"]) == 0
    text = capsys.readouterr().out
    assert "constant" in text and "mlp" in text and "toy-smear" not in text
    assert main(["backends", "nothing*"]) == 0
    assert "no backends match" in capsys.readouterr().out


def test_registry_commands_on_embedded_store(tmp_path, monkeypatch, capsys, mlflow_store):
    import mlflow

    import memzoo
    from memzoo import tracking
    from memzoo.bundle import Bundle

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        tracking.configure_tracking()  # the embedded default: ./memzoo-runs
        assert (tmp_path / "memzoo-runs" / "mlflow.db").is_file()
        bundle = Bundle("toy-muon", transfer=memzoo.create("transfer", "toy-smear"))
        tracking.register_bundle(bundle, "memzoo-toy-cli", alias="champion")
        tracking.register_bundle(bundle, "memzoo-toy-cli")
        capsys.readouterr()

        assert main(["registry", "list", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert listed == [
            {"name": "memzoo-toy-cli", "latest_version": 2, "aliases": {"champion": 1}, "description": ""}
        ]
        assert main(["registry", "alias", "memzoo-toy-cli", "champion", "2"]) == 0
        assert "version 2" in capsys.readouterr().out
        assert main(["registry", "show", "memzoo-toy-cli", "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert [v["aliases"] for v in shown["versions"]] == [[], ["champion"]]
        assert main(["registry", "list"]) == 0
        assert "champion->v2" in capsys.readouterr().out
        assert main(["registry", "alias", "memzoo-toy-cli", "champion"]) == 2
        assert "Give the version" in capsys.readouterr().err
        assert main(["registry", "alias", "memzoo-toy-cli", "champion", "--delete"]) == 0
        assert main(["registry", "show", "memzoo-toy-cli", "--json"]) == 0
        assert "champion" not in capsys.readouterr().out.split("removed")[-1].split('"versions"')[1]
    finally:
        mlflow.set_tracking_uri(mlflow_store["uri"])
        mlflow.set_registry_uri(mlflow_store["uri"])
        mlflow.set_experiment("memzoo")


def test_unknown_kind_is_an_argparse_error():
    with pytest.raises(SystemExit):
        main(["backends", "--kind", "transfers"])


def test_xsec_json_and_table(capsys):
    assert main(["xsec", "toy-muon", "--theta", "slope=0.03", "--process-option", "sigma0=7.5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"process", "theta", "sigma_fb", "error_fb"}
    assert result["theta"] == {"slope": 0.03}
    assert abs(result["sigma_fb"] - 7.5) < 5 * result["error_fb"] + 1e-9
    assert main(["xsec", "toy-muon", "--theta", "slope=0.02:0.1:3", "--points", "2000", "--iterations", "3"]) == 0
    table = capsys.readouterr().out
    assert "slope=0.02 1/GeV" in table and "slope=0.06 1/GeV" in table and "slope=0.1 1/GeV" in table


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["xsec", "toy-muon", "--theta", "slope=5"], "outside its range"),
        (["xsec", "toy-muon", "--theta", "slop=0.05"], "Unknown parameter"),
        (["xsec", "toy-muon", "--theta", "slope"], "must look like NAME=VALUE"),
        (["xsec", "toy-muon", "--theta", "slope=abc"], "values must be numbers"),
        (["xsec", "toy-muon", "--process-option", "sigma=3"], "config key(s) ['sigma']"),
        (["xsec", "no-such-process"], "Unknown process 'no-such-process'. Must be one of"),
    ],
)
def test_xsec_bad_input(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_readme_backend_table_is_current():
    """The README's backend table must equal `memzoo backends --markdown`."""
    import re
    from pathlib import Path

    from memzoo.cli import backends_markdown

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = re.search(r"<!-- backends:start -->\n(.*?)\n<!-- backends:end -->", readme, re.S)
    assert table, "README.md lost its backend table markers"
    assert table.group(1) == backends_markdown(), "README backend table is stale: run `memzoo backends --markdown`"
