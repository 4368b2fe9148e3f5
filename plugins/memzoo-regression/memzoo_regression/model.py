"""The regression surrogate of the MEM likelihood: x_reco, θ → I = −log10 p(x_reco|θ).

Bury & Delaere (JHEP 04 (2021) 020, arXiv:2008.10949) regress the event information
I' = −log10(weight) of MoMEMta integrations with a DNN (Sec. 3; 6 × 200 ReLU, SELU output for
Drell-Yan, Table 2) and make it *parametric* by adding the theory parameters to the inputs
(their H → ZA network, Sec. 4.3; Baldi et al., arXiv:1601.07913), so that one network
interpolates between the θ points it was trained on. DeepMEM (CHEP 2023) does the same with
residual networks and reports the mean absolute percentage error. Here the targets come from
memzoo's own integrator (or external weights, :mod:`memzoo_regression.training_data`), and the
trained network is a :class:`memzoo.protocols.LikelihoodModel` that needs no integration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from memzoo.events import Particles
from memzoo.preprocessing import Standardise
from memzoo.protocols import Likelihood
from memzoo_regression.features import EventFeatures
from memzoo_regression.network import build_network

__all__ = ["LN10", "RegressionConfig", "RegressionLikelihood"]

LN10 = math.log(10.0)
LOSSES = ("mse", "huber")


@dataclass(frozen=True)
class RegressionConfig:
    """Hyperparameters of :class:`RegressionLikelihood` (defaults: Bury & Delaere, Drell-Yan).

    Attributes:
        objects, charge_order, phi_encoding: the input features (:class:`EventFeatures`).
        n_parameters: P, the number of θ columns given to the network.
        architecture: ``mlp`` or ``resnet`` (:mod:`memzoo_regression.network`).
        layers: hidden layers (``mlp``) or residual blocks of two layers (``resnet``).
        hidden: units per hidden layer.
        activation: hidden activation (paper: ``relu``).
        output_activation: ``selu`` (paper) or ``linear``. With SELU the standardised target is
            shifted so that the smallest training target sits at −1, inside SELU's range
            (> −1.758).
        loss: ``mse`` or ``huber`` (on the standardised target).
        huber_delta: the Huber transition point, in standard deviations of the training targets.
        max_batch: (event, θ) rows per forward pass in :meth:`~RegressionLikelihood.log_likelihood`.
        theta_period: per parameter its period (e.g. 360 for tHj's CP angle α in degrees) or 0
            (not periodic); empty: none is. A periodic parameter enters the network as
            (cos, sin) of 2πθ/period instead of its standardised value, so that the regressed I
            is periodic in it (θ and θ + period are the same input).
    """

    objects: tuple[str, ...] = ("mu",)
    charge_order: bool = False
    phi_encoding: Literal["cossin", "delta"] = "cossin"
    n_parameters: int = 1
    architecture: Literal["mlp", "resnet"] = "mlp"
    layers: int = 6
    hidden: int = 200
    activation: str = "relu"
    output_activation: Literal["selu", "linear"] = "selu"
    loss: Literal["mse", "huber"] = "mse"
    huber_delta: float = 1.0
    max_batch: int = 65536
    theta_period: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.n_parameters < 0 or self.max_batch < 1 or not self.huber_delta > 0:
            raise ValueError(
                f"need n_parameters >= 0, max_batch >= 1 and huber_delta > 0; got {self.n_parameters}, "
                f"{self.max_batch}, {self.huber_delta}."
            )
        periods = list(self.theta_period)
        if periods and (len(periods) != self.n_parameters or any(not (p >= 0 and math.isfinite(p)) for p in periods)):
            raise ValueError(
                f"theta_period needs one period >= 0 (0: not periodic) per parameter ({self.n_parameters}), "
                f"got {periods}."
            )


class RegressionLikelihood(nn.Module):
    """A parametric DNN for I(x_reco, θ) = −log10 p(x_reco|θ), used as a LikelihoodModel.

    Inputs are standardised with statistics fitted on the training data
    (:meth:`fit_preprocessing`), kept as buffers so that they travel in a bundle's safetensors,
    like the validation ``bias`` and ``resolution`` of I that :meth:`set_resolution` records.
    ``log_likelihood`` returns ``logp = −ln(10) · I`` and, as ``std``, ``ln(10)`` times the
    validation resolution of I (a regression error, not a Monte-Carlo one).

    Example:
        >>> model = RegressionLikelihood(RegressionLikelihood.Config(objects=("mu",), layers=2, hidden=8))
        >>> from memzoo.testing import ToyProblem
        >>> p = ToyProblem.one_muon(n=4)
        >>> model.log_likelihood(p.reco, p.theta).logp.shape
        torch.Size([4, 3])
    """

    name = "regression"
    Config = RegressionConfig

    def __init__(self, config: RegressionConfig | None = None) -> None:
        super().__init__()
        self.config = config or self.Config()
        c = self.config
        self.features = EventFeatures(tuple(c.objects), c.charge_order, c.phi_encoding)
        n_feat, n_par = self.features.n_features, c.n_parameters
        self._periods = [float(p) for p in c.theta_period] or [0.0] * n_par
        self.net = build_network(
            n_feat + n_par + sum(p > 0 for p in self._periods),  # a periodic θ takes two inputs
            architecture=c.architecture,
            layers=c.layers,
            hidden=c.hidden,
            activation=c.activation,
            output_activation=c.output_activation,
        )
        for name, size in (("feature", n_feat), ("theta", n_par)):
            self.register_buffer(f"{name}_mean", torch.zeros(size, dtype=torch.float64))
            self.register_buffer(f"{name}_std", torch.ones(size, dtype=torch.float64))
        for name, value in (("target_loc", 0.0), ("target_scale", 1.0), ("bias", 0.0), ("resolution", 0.0)):
            self.register_buffer(name, torch.tensor(value, dtype=torch.float64))

    # -- preprocessing --------------------------------------------------------------------

    def event_features(self, reco: Particles, charge: torch.Tensor | None = None) -> torch.Tensor:
        """``(E, F)`` float64 unstandardised features of E reco events."""
        return self.features(reco, charge)

    def _check(self, features: torch.Tensor, theta: torch.Tensor) -> None:
        f, p = self.features.n_features, self.config.n_parameters
        if features.ndim != 2 or features.shape[1] != f:
            raise ValueError(f"features must be (B, {f}) ({self.features.names}), got {tuple(features.shape)}.")
        if theta.ndim != 2 or theta.shape[1] != p or len(theta) != len(features):
            raise ValueError(f"theta must be (B, {p}) with B = {len(features)} rows, got {tuple(theta.shape)}.")

    @torch.no_grad()
    def fit_preprocessing(self, features: torch.Tensor, theta: torch.Tensor, target: torch.Tensor) -> None:
        """Fit the input and target standardisation on training rows.

        Args:
            features: ``(B, F)`` from :meth:`event_features`.
            theta: ``(B, P)`` parameter points.
            target: ``(B,)`` finite I = −log10 p.
        """
        self._check(features, theta)
        if len(target) < 2 or not bool(torch.isfinite(target).all()):
            raise ValueError("fit_preprocessing needs at least two rows and finite targets (drop invalid ones).")
        for (mean, std), data in (
            ((self.feature_mean, self.feature_std), features),
            ((self.theta_mean, self.theta_std), theta),
        ):
            if data.shape[1]:
                fitted = Standardise().fit(data.to(torch.float64))
                mean.copy_(fitted.mean)
                std.copy_(fitted.std)
        t = target.to(torch.float64)
        scale = t.std().clamp(min=1e-6)
        loc = t.min() + scale if self.config.output_activation == "selu" else t.mean()
        self.target_loc.copy_(loc)
        self.target_scale.copy_(scale)

    @torch.no_grad()
    def set_resolution(self, bias: float, resolution: float) -> None:
        """Record the validation bias and resolution of I (they set ``Likelihood.std``)."""
        if not (math.isfinite(bias) and math.isfinite(resolution) and resolution >= 0):
            raise ValueError(f"bias and resolution must be finite and resolution >= 0, got {bias}, {resolution}.")
        self.bias.fill_(bias)
        self.resolution.fill_(resolution)

    # -- the network ----------------------------------------------------------------------

    def _standardised_output(self, features: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        self._check(features, theta)
        dev = self.feature_mean.device
        x = (features.to(dev, torch.float64) - self.feature_mean) / self.feature_std
        theta = theta.to(dev, torch.float64)
        th = (theta - self.theta_mean) / self.theta_std
        if any(self._periods):
            columns = []
            for j, period in enumerate(self._periods):
                if period > 0:
                    angle = (2 * math.pi / period) * theta[:, j]
                    columns += [torch.cos(angle), torch.sin(angle)]
                else:
                    columns.append(th[:, j])
            th = torch.stack(columns, -1)
        return self.net(torch.cat([x, th], -1).float()).squeeze(-1)

    def forward(self, features: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """``(B,)`` float64 regressed I = −log10 p for row-wise ``features (B, F)``, ``theta (B, P)``."""
        out = self._standardised_output(features, theta).double()
        return self.target_loc + self.target_scale * out

    def loss(
        self, features: torch.Tensor, theta: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Weighted mean MSE or Huber loss of the standardised I of a batch (weights: ``(B,)``, >= 0)."""
        out = self._standardised_output(features, theta)
        t = ((target.to(out.device, torch.float64) - self.target_loc) / self.target_scale).float()
        if self.config.loss == "mse":
            per_row = (out - t) ** 2
        else:
            per_row = nn.functional.huber_loss(out, t, reduction="none", delta=self.config.huber_delta)
        if weight is None:
            return per_row.mean()
        w = weight.to(out.device, out.dtype)
        return (w * per_row).sum() / w.sum().clamp(min=1e-30)

    # -- LikelihoodModel ------------------------------------------------------------------

    def information(self, reco: Particles, theta: torch.Tensor) -> torch.Tensor:
        """``(E, T)`` float64 regressed I = −log10 p(x_reco|θ) for E events and ``theta (T, P)``."""
        theta = torch.as_tensor(theta)
        if theta.ndim != 2 or theta.shape[1] != self.config.n_parameters:
            raise ValueError(f"theta must be (T, {self.config.n_parameters}), got {tuple(theta.shape)}.")
        features = self.event_features(reco).to(self.feature_mean.device)
        theta = theta.to(self.feature_mean.device, torch.float64)
        e, t = len(features), len(theta)
        rows = torch.arange(e * t, device=features.device)
        out = torch.empty(e * t, dtype=torch.float64, device=features.device)
        for start in range(0, e * t, self.config.max_batch):
            r = rows[start : start + self.config.max_batch]
            out[r] = self(features[r // t], theta[r % t])
        return out.reshape(e, t)

    def log_likelihood(self, reco: Particles, theta: torch.Tensor) -> Likelihood:
        """log p(x_reco|θ) = −ln(10) · I for E reco events at ``theta (T, P)``.

        Returns:
            :class:`~memzoo.protocols.Likelihood` with ``logp (E, T)``, ``std (E, T)`` (ln 10 ×
            the validation resolution of I) and ``diagnostics["complete"] (E,)``: whether the
            event has every object slot filled (others are regressed with empty slots).
        """
        info = self.information(reco, theta)
        logp = -LN10 * info
        std = torch.full_like(logp, LN10 * float(self.resolution))
        _, present = self.features.select(reco)
        return Likelihood(logp, std, torch.as_tensor(theta).to(logp), {"complete": present.all(1).to(logp.device)})

    def fit_card(self, card: Any, *, progress: bool = False) -> dict[str, float]:
        """Train on the data a model card names (``memzoo train``); see :mod:`memzoo_regression.card`."""
        from memzoo_regression.card import fit_from_card

        return fit_from_card(self, card, progress=progress)

    def extra_repr(self) -> str:
        return f"features={self.features.names}, n_parameters={self.config.n_parameters}"

    def describe(self) -> dict[str, Any]:
        """Sizes and the recorded validation metrics, for logs."""
        n = sum(p.numel() for p in self.parameters())
        return {"parameters": n, "bias": float(self.bias), "resolution": float(self.resolution)}
