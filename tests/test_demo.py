"""``make demo``'s job on a tiny card: train, integrate, plot, in the embedded store of the cwd."""

from __future__ import annotations

from pathlib import Path

import mlflow
import torch

CARD = Path(__file__).parents[1] / "registry" / "drell-yan" / "cinn.toml"


def test_mlmem_demo_runs_end_to_end(tmp_path, monkeypatch, mlflow_store):
    from memzoo.demo import run_mlmem

    text = (
        CARD.read_text().replace("events = 60000", "events = 2000").replace("chunk_size = 10000", "chunk_size = 1000")
    )
    for before in ("epochs = 15", "epochs = 5", "epochs = 40"):
        text = text.replace(before, "epochs = 1")
    card = tmp_path / "cinn.toml"
    card.write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        numbers = run_mlmem(tmp_path / "demo", n_events=5, card=card, points=200)
    finally:
        mlflow.set_tracking_uri(mlflow_store["uri"])
        mlflow.set_registry_uri(mlflow_store["uri"])
        mlflow.set_experiment("memzoo")
    assert Path(numbers["plot"]).is_file()
    assert (tmp_path / "memzoo-runs" / "mlflow.db").is_file()
    for key in ("learned_best_sin2theta", "exact-transfer_best_sin2theta", "hard-level_best_sin2theta"):
        assert 0.15 - 1e-9 <= numbers[key] <= 0.31 + 1e-9
    assert all(torch.isfinite(torch.tensor(v)) for v in numbers["metrics"].values())
