"""The shared trainer: configs, schedules, early stopping, pickle-free checkpoints, MLflow, acceptance."""

from __future__ import annotations

import ast
import itertools
import json
import math
import pickle
from pathlib import Path

import pytest
import torch

import memzoo
from memzoo.builtin.acceptance import MLPAcceptance
from memzoo.builtin.acceptance_training import binned_acceptance, calibration, train_acceptance
from memzoo.checkpoints import flatten_state, unflatten_state
from memzoo.config import ConfigError
from memzoo.training import Trainer, TrainingConfig, make_scheduler, thesis_config


def _mse(model, x, y):
    return ((model(x) - y) ** 2).mean()


def _regression(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=g)


def _net(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(8, 1))


# ---------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizer": "sgd"}, "optimizer must be one of"),
        ({"schedule": "linear"}, "schedule must be one of"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"batch_size": 2.5}, "batch_size must be an integer"),
        ({"lr": -1e-3}, "lr must be a positive finite number"),
        ({"lr": float("nan")}, "lr must be a positive finite number"),
        ({"lr": 1e-3, "max_lr": 1e-4}, "max_lr must be >= lr"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"early_stopping_patience": 0}, "early_stopping_patience must be None"),
        ({"grad_clip": 0.0}, "grad_clip must be None"),
        ({"seed": True}, "seed must be an integer"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"device": "tpu-ish"}, "is not a torch device"),
    ],
)
def test_config_errors_say_what_to_fix(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TrainingConfig(**kwargs)


def test_config_from_dict_and_thesis_presets():
    with pytest.raises(ConfigError, match="Unknown training config key"):
        TrainingConfig.from_dict({"learning_rate": 1e-3})
    assert TrainingConfig.from_dict({"epochs": 3.0}).epochs == 3
    default = TrainingConfig()  # Table A.8
    assert (default.optimizer, default.lr, default.max_lr, default.schedule, default.batch_size) == (
        "adam", 1e-4, 3e-4, "one-cycle", 1024,
    )  # fmt: skip
    assert thesis_config("transfermer").optimizer == "radam"  # Table A.10
    cfm = thesis_config("cfm", epochs=5)  # Table A.9
    assert (cfm.schedule, cfm.lr, cfm.batch_size, cfm.epochs) == ("cosine", 1e-3, 16384, 5)
    with pytest.raises(ValueError, match="Must be one of"):
        thesis_config("gan")
    with pytest.raises(TypeError, match="TrainingConfig"):
        Trainer(_net(), _mse, {"lr": 1e-3}, name="x", mlflow=False)


# ---------------------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------------------


def test_one_cycle_starts_at_lr_peaks_at_max_lr_and_ends_low():
    config = TrainingConfig(lr=1e-4, max_lr=3e-4, schedule="one-cycle", epochs=10)
    optimizer = torch.optim.Adam(_net().parameters(), lr=config.lr)
    scheduler, per_batch = make_scheduler(optimizer, config, steps_per_epoch=10)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert per_batch
    assert lrs[0] == pytest.approx(1e-4, rel=1e-9)
    assert max(lrs) == pytest.approx(3e-4, rel=1e-9)
    assert lrs.index(max(lrs)) == 29  # 30 % of the 100 steps rising
    assert lrs[-1] == pytest.approx(1e-8, rel=1e-6)  # lr / 1e4 at the end
    assert all(a <= b for a, b in itertools.pairwise(lrs[:30])) and all(a >= b for a, b in itertools.pairwise(lrs[29:]))


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_per_epoch_schedules_in_the_trainer_history(schedule):
    config = TrainingConfig(lr=1e-2, schedule=schedule, epochs=4, batch_size=32)
    result = Trainer(_net(), _mse, config, name="s", mlflow=False).fit(_regression())
    expected = [1e-2 * (1 + math.cos(math.pi * e / 4)) / 2 if schedule == "cosine" else 1e-2 for e in range(4)]
    assert result.history["lr"] == pytest.approx(expected, rel=1e-9)
    assert all(math.isnan(v) for v in result.history["val_loss"]) and result.best_val_loss is None


# ---------------------------------------------------------------------------------------
# early stopping
# ---------------------------------------------------------------------------------------


def test_early_stopping_stops_and_restores_the_best_weights():
    x = torch.linspace(-1, 1, 64)[:, None]
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    snapshots = []
    config = TrainingConfig(lr=0.05, schedule="constant", epochs=20, batch_size=16, early_stopping_patience=2)
    trainer = Trainer(
        model, _mse, config, name="es", mlflow=False, callbacks=[lambda e, m: snapshots.append(model.weight.clone())]
    )
    # training pulls w towards +1, validation wants -1: the first epoch is the best one
    result = trainer.fit((x, x), (x, -x))
    assert result.stopped_early and result.epochs_run == 3 and result.best_epoch == 1
    assert torch.equal(model.weight, snapshots[0]) and not torch.equal(snapshots[0], snapshots[-1])
    assert trainer.evaluate((x, -x)) == pytest.approx(result.best_val_loss, rel=1e-6)


def test_non_finite_loss_is_an_error():
    x, y = _regression()
    config = TrainingConfig(epochs=1, batch_size=32)
    with pytest.raises(FloatingPointError, match="non-finite training loss"):
        Trainer(_net(), _mse, config, name="nan", mlflow=False).fit((x, y * float("nan")))


# ---------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------


class _Interrupt(RuntimeError):
    pass


def _stop_after(k):
    def callback(epoch, metrics):
        if epoch == k:
            raise _Interrupt(f"stopped after epoch {epoch}")

    return callback


@pytest.mark.parametrize(
    ("optimizer", "schedule", "every", "stop_at", "patience"),
    [("adam", "one-cycle", 2, 3, None), ("radam", "cosine", 1, 4, 10)],
)
def test_resume_reproduces_the_uninterrupted_weights_bit_exactly(
    tmp_path, optimizer, schedule, every, stop_at, patience
):
    x, y = _regression()
    train, val = (x[:64], y[:64]), (x[64:], y[64:])
    config = TrainingConfig(
        optimizer=optimizer, lr=1e-3, max_lr=1e-2, schedule=schedule, epochs=6, batch_size=16, weight_decay=1e-4,
        early_stopping_patience=patience, grad_clip=1.0, checkpoint_every=every, seed=3,
    )  # fmt: skip
    straight = _net(seed=1, dropout=0.2)  # dropout: the RNG state must travel with the checkpoint
    reference = Trainer(straight, _mse, config, name="straight", mlflow=False).fit(train, val)

    interrupted = Trainer(
        _net(seed=1, dropout=0.2), _mse, config, name="r", checkpoint_dir=tmp_path, mlflow=False,
        callbacks=[_stop_after(stop_at)],
    )  # fmt: skip
    with pytest.raises(_Interrupt):
        interrupted.fit(train, val)
    assert json.loads((tmp_path / "checkpoint.json").read_text())["epoch"] == stop_at - stop_at % every
    resumed_model = _net(seed=99, dropout=0.2)  # different weights: everything must come from the checkpoint
    resumed = Trainer(resumed_model, _mse, config, name="r", checkpoint_dir=tmp_path, mlflow=False)
    result = resumed.fit(train, val, resume=True)

    for a, b in zip(straight.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)
    assert result.history == reference.history and result.epochs_run == 6


def test_checkpoints_hold_no_pickles(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle-based serialisation was called")

    for module, attr in ((torch, "save"), (torch, "load"), (pickle, "dump"), (pickle, "dumps")):
        monkeypatch.setattr(module, attr, forbidden)
    config = TrainingConfig(lr=1e-3, max_lr=1e-2, epochs=2, batch_size=32, early_stopping_patience=3)
    Trainer(_net(), _mse, config, name="p", checkpoint_dir=tmp_path, mlflow=False).fit(
        _regression(), _regression(32, 1)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json", "checkpoint.safetensors"]
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    assert meta["epoch"] == 2 and meta["optimizer"]["param_groups"][0]["params"] == [0, 1, 2, 3]
    raw = (tmp_path / "checkpoint.safetensors").read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])  # safetensors: length + JSON header
    assert {"model/0.weight", "rng/cpu", "optimizer/state/0/exp_avg", "extra/3.bias"} <= set(header)


def test_memzoo_never_calls_torch_save_or_load():
    root = Path(memzoo.__file__).parent
    calls = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("save", "load"):
                if isinstance(node.value, ast.Name) and node.value.id == "torch":
                    calls.append(f"{path.relative_to(root)}:{node.lineno} torch.{node.attr}")
    assert not calls, f"torch.save/torch.load pickle; use safetensors + JSON instead: {calls}"


def test_flatten_state_round_trip_and_refusals():
    state = {"state": {0: {"step": torch.tensor(3.0), "buf": torch.ones(2)}}, "groups": [{"betas": (0.9, 0.99)}]}
    tensors: dict[str, torch.Tensor] = {}
    structure = flatten_state(state, tensors, "opt")
    back = unflatten_state(json.loads(json.dumps(structure)), tensors)
    assert back["groups"][0]["betas"] == (0.9, 0.99) and list(back["state"]) == [0]
    assert torch.equal(back["state"][0]["buf"], torch.ones(2))
    with pytest.raises(TypeError, match="without pickling"):
        flatten_state({"fn": print}, {}, "x")


def test_resume_checks(tmp_path):
    x, y = _regression()
    config = TrainingConfig(lr=1e-3, max_lr=1e-2, epochs=2, batch_size=32)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        Trainer(_net(), _mse, config, name="c", mlflow=False).fit((x, y), resume=True)
    # no checkpoint yet: resume starts afresh
    assert (
        Trainer(_net(), _mse, config, name="c", checkpoint_dir=tmp_path, mlflow=False)
        .fit((x, y), resume=True)
        .epochs_run
        == 2
    )
    other = TrainingConfig(lr=1e-3, max_lr=1e-2, epochs=3, batch_size=32)
    with pytest.raises(ValueError, match="other settings"):
        Trainer(_net(), _mse, other, name="c", checkpoint_dir=tmp_path, mlflow=False).fit((x, y), resume=True)


# ---------------------------------------------------------------------------------------
# MLflow
# ---------------------------------------------------------------------------------------


def test_mlflow_run_has_params_metrics_and_artifacts(mlflow_store, tmp_path):
    import mlflow
    from matplotlib.figure import Figure

    def plot(model):
        fig = Figure()
        fig.add_subplot().hist(model.prob(torch.randn(64, 3)).detach().numpy())
        return {"kinematics": fig}

    model = MLPAcceptance(MLPAcceptance.Config(hard_dim=3, layers=2, hidden=8))
    x = torch.randn(64, 3)
    y = (x[:, 0] > 0).float()

    def bce(m, xb, yb):
        return torch.nn.functional.binary_cross_entropy_with_logits(m.logits(xb), yb)

    config = TrainingConfig(lr=1e-3, max_lr=1e-2, epochs=3, batch_size=16)
    client = mlflow.MlflowClient()
    with mlflow.start_run(run_name="parent") as parent:
        trainer = Trainer(
            model, bce, config, name="acc-net", plot_fn=plot, params={"card": "t"},
            checkpoint_dir=tmp_path, callbacks=[_stop_after(2)],
        )  # fmt: skip
        with pytest.raises(_Interrupt):
            trainer.fit((x, y), (x[:16], y[:16]))
        trainer.callbacks = []
        result = trainer.fit((x, y), (x[:16], y[:16]), resume=True)  # continues the same (nested) run
    run = client.get_run(result.run_id)
    assert run.info.run_name == "acc-net" and run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    params = run.data.params
    assert params["train.lr"] == "0.001" and params["train.schedule"] == "one-cycle"
    assert params["model.hidden"] == "8" and params["model.class"] == "MLPAcceptance" and params["card"] == "t"
    for key in ("train_loss", "val_loss", "lr"):
        assert [m.step for m in client.get_metric_history(result.run_id, key)] == [1, 2, 3]
    assert run.data.metrics["best_val_loss"] == pytest.approx(result.best_val_loss)
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert artifacts == {"plots/loss_curve.png", "plots/kinematics.png"}
    assert mlflow.active_run() is None


# ---------------------------------------------------------------------------------------
# the acceptance classifier
# ---------------------------------------------------------------------------------------


def _true_eps(coords):
    """A smooth toy acceptance: a pT threshold times a rapidity window."""
    return torch.sigmoid((coords[:, 0] - 40.0) / 8.0) * torch.sigmoid(3.0 * (2.0 - coords[:, 1].abs()))


def test_acceptance_classifier_learns_a_known_acceptance(mlflow_store):
    import mlflow

    g = torch.Generator().manual_seed(3)
    coords = torch.randn(16_000, 3, generator=g) * torch.tensor([30.0, 1.5, 1.0]) + torch.tensor([50.0, 0.0, 0.0])
    accepted = torch.rand(len(coords), generator=g) < _true_eps(coords)
    torch.manual_seed(0)
    model = MLPAcceptance(MLPAcceptance.Config(hard_dim=3, layers=3, hidden=32))
    config = TrainingConfig(lr=1e-3, max_lr=1e-2, epochs=6, batch_size=256)
    out = train_acceptance(
        model, coords, accepted, config, val_fraction=0.25, names=["pT", "eta", "phi"], true_acceptance=_true_eps
    )
    assert out.metrics["val_mean_abs_error_true"] < 0.03
    assert out.metrics["calibration_ece"] < 0.03 and out.metrics["val_accuracy"] > 0.8
    # binned in pT and η the classifier matches the mean true acceptance to 0.04
    val = torch.randperm(len(coords), generator=torch.Generator().manual_seed(config.seed))[:4000]
    with torch.no_grad():
        prob = model.prob(coords[val].float()).double()
    for i, edges in ((0, torch.linspace(10, 120, 12)), (1, torch.linspace(-3, 3, 13))):
        learned = binned_acceptance(coords[val, i], prob, accepted[val], edges)
        truth = binned_acceptance(coords[val, i], _true_eps(coords[val]), accepted[val], edges)
        assert (learned["predicted"] - truth["predicted"]).abs().max() < 0.04, i
    client = mlflow.MlflowClient()
    run = client.get_run(out.training.run_id)
    assert run.data.metrics["val_bce"] == pytest.approx(out.metrics["val_bce"])
    assert "plots/acceptance.png" in {a.path for a in client.list_artifacts(out.training.run_id, "plots")}


@pytest.mark.slow
def test_acceptance_classifier_reproduces_the_drell_yan_detector_acceptance(dy):
    exact = memzoo.create("acceptance", "parametric-exact")
    g = torch.Generator().manual_seed(5)
    coords = dy.sample(30_000, dy.theta(), generator=g)
    accepted = torch.rand(len(coords), generator=g, dtype=torch.float64) < exact.prob(coords)
    torch.manual_seed(0)
    model = MLPAcceptance(MLPAcceptance.Config(hard_dim=4, layers=4, hidden=64))
    config = TrainingConfig(lr=1e-3, max_lr=1e-2, epochs=10, batch_size=256)
    out = train_acceptance(
        model, coords, accepted, config, val_fraction=0.2, true_acceptance=exact.prob, mlflow=False,
        names=dy.coordinate_names,
    )  # fmt: skip
    assert out.metrics["val_mean_abs_error_true"] < 0.04 and out.metrics["calibration_ece"] < 0.02


def test_acceptance_inputs_are_checked():
    model = MLPAcceptance(MLPAcceptance.Config(hard_dim=2, layers=2, hidden=4))
    coords, accepted = torch.randn(10, 2), torch.ones(10, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        train_acceptance(model, torch.randn(10, 3), accepted, mlflow=False)
    with pytest.raises(ValueError, match="bool tensor"):
        train_acceptance(model, coords, accepted.float(), mlflow=False)
    with pytest.raises(ValueError, match="val_fraction"):
        train_acceptance(model, coords, accepted, val_fraction=1.0, mlflow=False)
    table = calibration(torch.tensor([0.05, 0.15, 0.95]), torch.tensor([False, False, True]), n_bins=10)
    assert table["ece"] == pytest.approx((0.05 + 0.15 + 0.05) / 3)
