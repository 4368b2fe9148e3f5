"""The Transfermer: p(x_reco, n|x_hard) from a transformer and a small per-particle cINN.

Heimel, PhD thesis 2024, Sec. 6.5.2, eqs. 6.40–6.45 and Table A.10 (after Vaswani et al.,
arXiv:1706.03762, and Butter et al., arXiv:2310.07752). A transformer encoder reads the hard
particles as tokens; a decoder with a causal mask reads a start token followed by the reco
objects shifted by one and returns a condition c_i per reco object; a
:class:`~memzoo_transfermer.particle_flow.ParticleFlow` gives p(x_i|c_i). With a variable number
of additional objects the multiplicity classifier p(n|x_hard)
(:class:`memzoo.builtin.multiplicity.MultiplicityClassifier`, Table A.8) completes eq. 6.45,

    p(x_reco, n|x_hard) = p(n|x_hard) Π_{i=1}^{n} p(x_i | c_i(e_reco^(0..i−1), e_hard, n)),

and n is passed to the transformer as an embedding added to every hard token. The density needs
one transformer pass; sampling draws n, then the objects one by one (n passes).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from memzoo.builtin.multiplicity import MultiplicityClassifier
from memzoo.events import Particles, RecoParticles, from_ptetaphim, to_ptetaphim, wrap_phi
from memzoo_transfermer.config import TransfermerConfig, resolve_sizes
from memzoo_transfermer.particle_flow import ParticleFlow
from memzoo_transfermer.sequences import FIXED_MASS, RecoLayout, canonical_hard, reference_azimuth

__all__ = ["Transfermer", "unpack"]

_N_NUMERIC = 5  # token features: u_logpt, η, cos φ, sin φ, u_logm


def unpack(batch: Any, *names: str) -> list[Any]:
    """Fields of a training batch (mapping, object with attributes or tuple); ``hard`` also
    answers to ``hard_coords``; a missing ``charge`` is ``None``."""
    if isinstance(batch, tuple | list):
        return [*batch, *([None] * (len(names) - len(batch)))][: len(names)]
    out = []
    for name in names:
        value = None
        for key in {"hard": ("hard", "hard_coords")}.get(name, (name,)):
            value = batch.get(key) if isinstance(batch, dict) else getattr(batch, key, None)
            if value is not None:
                break
        if value is None and name != "charge":
            raise ValueError(f"Training batch lacks {name!r}; give a mapping or object with {list(names)}.")
        out.append(value)
    return out


class Transfermer(nn.Module):
    """Transformer + per-particle cINN transfer probability (see the module docstring).

    Example:
        >>> model = Transfermer(Transfermer.Config(dim=16, heads=2))
        >>> hard = torch.tensor([[40.0, 0.5, 1.0]], dtype=torch.float64)
        >>> model.log_prob(model.sample(hard), hard).shape
        torch.Size([1])
    """

    name = "transfermer"
    Config = TransfermerConfig

    def __init__(self, config: TransfermerConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or self.Config()
        s = resolve_sizes(c)
        self.layout = RecoLayout(tuple(c.objects), c.extra, c.max_extra, c.charge_order)
        if c.process is not None:
            import memzoo

            self.process = memzoo.create("process", c.process, **c.process_config)
            self.hard_dim, hard_kinds = self.process.hard_dim, tuple(self.process.hard_kinds)
        else:
            self.process, self.hard_dim, hard_kinds = None, 3 * len(c.hard_kinds), tuple(c.hard_kinds)
            if not hard_kinds:
                raise ValueError("hard_kinds must name at least one hard particle when process is None.")
        self.hard_codes = sorted(set(hard_kinds))
        self.reco_codes = sorted(set(self.layout.base_kinds) | ({self.layout.extra_kind} - {None}))
        d = s["dim"]
        self.hard_embed = nn.Linear(_N_NUMERIC + len(self.hard_codes), d)
        self.reco_embed = nn.Linear(_N_NUMERIC + len(self.reco_codes), d)
        self.query_embed = nn.Embedding(self.layout.n_max * len(self.reco_codes), d)  # (slot, kind) of x_i
        self.start = nn.Parameter(torch.zeros(d))
        self.n_embed = nn.Embedding(c.max_extra + 1, d)
        layer = dict(d_model=d, nhead=s["heads"], dim_feedforward=s["feedforward"], dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(**layer), s["encoder_layers"], enable_nested_tensor=False
        )
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer), s["decoder_layers"])
        self.flow = ParticleFlow(d + len(self.reco_codes), s["subnet_layers"], s["subnet_hidden"], s["bins"], c.eta_max)
        self.multiplicity = None
        if c.max_extra > 0:
            self.multiplicity = MultiplicityClassifier(
                MultiplicityClassifier.Config(
                    n_features=_N_NUMERIC * len(hard_kinds), n_classes=c.max_extra + 1,
                    layers=s["classifier_layers"], hidden=s["classifier_hidden"],
                )
            )  # fmt: skip
        # standardisation of log pT and log(m + m_offset): (mean, std) for hard and reco tokens
        self.register_buffer("hard_norm", torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=torch.float64))
        self.register_buffer("reco_norm", torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=torch.float64))

    def train(self, mode: bool = True) -> Transfermer:
        """Set the mode; the transformer stays on PyTorch's reference path in both (dropout is 0,
        so nothing else changes): eval mode would switch to fused kernels whose rounding differs,
        and a saved-and-loaded (eval) model must reproduce the trained one's log p."""
        super().train(mode)
        self.encoder.train(True)
        self.decoder.train(True)
        return self

    # -- hard tokens --------------------------------------------------------------------------

    def hard_particles(self, hard: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hard coordinates ``(B, D)`` → momenta ``(B, M, 4)`` float64, kinds and mask."""
        if hard.ndim != 2 or hard.shape[1] != self.hard_dim:
            raise ValueError(f"hard must be (B, {self.hard_dim}) hard coordinates, got {tuple(hard.shape)}.")
        hard = hard.to(self.hard_norm.device, torch.float64)
        if self.process is not None:
            p = self.process.momenta_from_coords(hard).to(torch.float64)
            kinds = list(self.process.hard_kinds)
        else:
            x = hard.reshape(len(hard), -1, 3)
            p = from_ptetaphim(torch.cat([x, torch.zeros_like(x[..., :1])], -1))
            kinds = list(self.config.hard_kinds)
        kind = torch.tensor(kinds, device=p.device).expand(len(p), -1)
        return p, kind, torch.ones(kind.shape, dtype=torch.bool, device=p.device)

    def _hard_tokens(self, p: torch.Tensor, kind: torch.Tensor, mask: torch.Tensor):
        """Canonical hard tokens: numeric features ``(B, M, 5)`` float64, kind one-hot, mask, φ_ref."""
        p, kind, mask = canonical_hard(p, kind, mask)
        phi_ref = reference_azimuth(p)
        x = to_ptetaphim(p)
        codes = torch.tensor(self.hard_codes, device=p.device)
        unknown = mask & ~torch.isin(kind, codes)
        if unknown.any():
            raise ValueError(f"hard particle kind {int(kind[unknown][0])} is not one of {self.hard_codes}.")
        onehot = (kind[..., None] == codes).to(torch.float64)
        return self._numeric(x, phi_ref, self.hard_norm, torch.ones_like(mask)), onehot, mask, phi_ref

    def _numeric(self, x: torch.Tensor, phi_ref: torch.Tensor, norm: torch.Tensor, has_eta: torch.Tensor):
        """(u_logpt, η, cos φ_rel, sin φ_rel, u_logm) of (pT, η, φ, m) ``x (B, N, 4)``, float64."""
        u_pt = (torch.log(x[..., 0].clamp(min=1e-12)) - norm[0, 0]) / norm[0, 1]
        u_m = (torch.log((x[..., 3] + self.config.m_offset).clamp(min=1e-12)) - norm[1, 0]) / norm[1, 1]
        u_m = torch.where(x[..., 3].abs() < 1e-3, (math.log(self.config.m_offset) - norm[1, 0]) / norm[1, 1], u_m)
        phi = wrap_phi(x[..., 2] - phi_ref[:, None])
        eta = torch.where(has_eta, x[..., 1], 0.0)
        return torch.stack([u_pt, eta, torch.cos(phi), torch.sin(phi), u_m], -1)

    def _memory(self, hard: tuple[torch.Tensor, ...], n_extra: torch.Tensor | None):
        """Encoder output ``(B, M, d)``, hard mask, φ_ref ``(B,)``, classifier features ``(B, 5M)``
        of hard particles ``(p, kind, mask)``."""
        numeric, onehot, mask, phi_ref = self._hard_tokens(*hard)
        dev = self.start.device
        tokens = self.hard_embed(torch.cat([numeric, onehot], -1).to(dev, torch.float32))
        if n_extra is not None and self.multiplicity is not None:
            tokens = tokens + self.n_embed(n_extra.to(dev))[:, None]
        memory = self.encoder(tokens, src_key_padding_mask=~mask.to(dev))
        features = numeric.flatten(1).to(dev, torch.float32)
        return memory, mask.to(dev), phi_ref.to(dev), features

    # -- reco sequence ------------------------------------------------------------------------

    def _reco_features(self, p: torch.Tensor, kind: torch.Tensor, phi_ref: torch.Tensor):
        """Reco features of the sequence ``p (B, L, 4)`` (L <= n_max slots).

        Returns the embedding features ``(B, L, 5)``, the flow's pT feature ``(B, L)`` (u_logpt,
        or log(log pT_prev − log pT) on ordered slots), φ_rel, log|∂features/∂(pT, η, φ, m)|,
        has_eta, has_mass and a support mask ``(B, L)``.
        """
        x = to_ptetaphim(p)
        has_eta, has_mass = kind != 12, (kind == 1) | (kind == 5)
        numeric = self._numeric(x, phi_ref, self.reco_norm, has_eta)
        numeric[..., 4] = torch.where(has_mass, numeric[..., 4], 0.0)
        log_pt = torch.log(x[..., 0])
        prev = torch.tensor(self.layout.previous_same_kind()[: p.shape[1]], device=p.device)
        ordered = (prev >= 0).expand_as(log_pt)
        gap = log_pt[:, prev.clamp(min=0)] - log_pt  # log pT_prev − log pT > 0 on ordered slots
        f_pt = torch.where(ordered, torch.log(gap.clamp(min=1e-300)), numeric[..., 0])
        log_det = -log_pt - torch.where(ordered, torch.log(gap.clamp(min=1e-300)), torch.log(self.reco_norm[0, 1]))
        log_det = log_det + torch.where(has_mass, -torch.log(x[..., 3] + self.config.m_offset), 0.0)
        log_det = log_det - torch.where(has_mass, torch.log(self.reco_norm[1, 1]), 0.0)
        ok = (x[..., 0] > 0) & (~has_mass | (x[..., 3] + self.config.m_offset > 0)) & (~ordered | (gap > 0))
        phi = wrap_phi(x[..., 2] - phi_ref[:, None])
        return numeric, f_pt, phi, log_det, has_eta, has_mass, ok

    def _kind_onehot(self, kind: torch.Tensor) -> torch.Tensor:
        return (kind[..., None] == torch.tensor(self.reco_codes, device=kind.device)).to(torch.float32)

    def _queries(self, kind: torch.Tensor) -> torch.Tensor:
        index = torch.searchsorted(torch.tensor(self.reco_codes, device=kind.device), kind.contiguous()).clamp(
            max=len(self.reco_codes) - 1
        )
        slot = torch.arange(kind.shape[1], device=kind.device)
        return self.query_embed(slot * len(self.reco_codes) + index)

    def _conditions(self, memory, hard_mask, numeric, kind, mask) -> torch.Tensor:
        """Decoder outputs c_i ``(B, L, d + K)`` for L slots whose first L − 1 objects are known."""
        dev = self.start.device
        prev = self.reco_embed(torch.cat([numeric.to(dev, torch.float32), self._kind_onehot(kind)], -1))
        b, length = kind.shape
        tgt = torch.cat([self.start.expand(b, 1, -1), prev[:, : length - 1]], 1) + self._queries(kind)
        causal = torch.ones(length, length, dtype=torch.bool, device=dev).triu(1)
        out = self.decoder(
            tgt, memory, tgt_mask=causal, tgt_is_causal=True,
            tgt_key_padding_mask=~mask, memory_key_padding_mask=~hard_mask,
        )  # fmt: skip
        return torch.cat([out, self._kind_onehot(kind)], -1)

    # -- the protocol ---------------------------------------------------------------------------

    def log_prob(self, reco: Particles, hard: torch.Tensor, charge: torch.Tensor | None = None) -> torch.Tensor:
        """``(B,)`` float64 log p(x_reco, n|x_hard) per dpT dη dφ (dm for jets) of each modelled object.

        Args:
            reco: B reco events; objects of kinds outside the layout are ignored.
            hard: ``(B, D)`` hard coordinates.
            charge: ``(B, N)`` charges for ``charge_order`` (default ``reco.charge``).

        Events outside the support (other object counts, |η| > eta_max) get −inf.
        """
        return self.log_prob_particles(reco, self.hard_particles(hard), charge)

    def log_prob_particles(
        self, reco: Particles, hard: tuple[torch.Tensor, ...], charge: torch.Tensor | None = None
    ) -> torch.Tensor:
        """:meth:`log_prob` with the hard particles given as ``(p (B, M, 4), kind (B, M), mask (B, M))``.

        Invariant under any permutation of the M hard particles (see :mod:`~memzoo_transfermer.sequences`).
        """
        dev = self.start.device
        p, kind, mask, n_extra, valid = self.layout.select(reco.to(dev), charge)
        memory, hard_mask, phi_ref, features = self._memory(hard, n_extra)
        numeric, f_pt, phi, log_det, has_eta, has_mass, ok = self._reco_features(p, kind, phi_ref)
        numeric = numeric * mask[..., None]  # empty slots carry no information
        c = self._conditions(memory, hard_mask, numeric, kind, mask)
        num = numeric.to(torch.float32)
        log_x = self.flow.log_prob(c[mask], f_pt[mask].float(), num[..., 1][mask], phi[mask].float(),
                                   num[..., 4][mask], has_eta[mask], has_mass[mask])  # fmt: skip
        per_object = torch.zeros(kind.shape, dtype=torch.float64, device=dev)
        per_object[mask] = log_x.double() + log_det[mask]
        log_p = per_object.sum(1)
        if self.multiplicity is not None:
            log_p = log_p + self.multiplicity.log_prob(features, n_extra).double()
        valid = valid & (ok | ~mask).all(1)
        return torch.where(valid, log_p, -torch.inf)

    @torch.no_grad()
    def sample(self, hard: torch.Tensor, generator: torch.Generator | None = None) -> Particles:
        """One reco event per hard point ``hard (B, D)``: n ~ p(n|x_hard), then objects one by one."""
        return self.sample_and_log_prob(hard, generator)[0]

    @torch.no_grad()
    def sample_and_log_prob(
        self, hard: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[Particles, torch.Tensor]:
        """Samples as :meth:`sample` and their ``(B,)`` log density, accumulated during the
        autoregressive generation (conditions from the growing prefix, n transformer passes).

        It equals :meth:`log_prob` of the samples (one pass over the full sequence) exactly when
        the causal mask hides every later object from each condition — up to sampled jet masses
        below zero (allowed by the log(m + m_offset) latent), which are returned as m = 0.
        """
        dev, b = self.start.device, len(hard)
        particles = self.hard_particles(hard)
        memory, hard_mask, phi_ref, features = self._memory(particles, None)
        n_extra = torch.zeros(b, dtype=torch.long, device=dev)
        if self.multiplicity is not None:
            n_extra = self.multiplicity.sample(features, generator)
            memory, *_ = self._memory(particles, n_extra)
        kind, mask = self.layout.kinds(n_extra)
        length = self.layout.n_max
        gen_dev = generator.device if generator is not None else dev
        noise = torch.rand(b, length, 4, generator=generator, device=gen_dev, dtype=torch.float64).to(dev)
        numeric = torch.zeros(b, length, _N_NUMERIC, dtype=torch.float64, device=dev)
        phi = torch.zeros(b, length, dtype=torch.float64, device=dev)
        log_pt = torch.zeros(b, length, dtype=torch.float64, device=dev)
        prev = self.layout.previous_same_kind()
        norm = self.reco_norm
        has_eta, has_mass = kind != 12, (kind == 1) | (kind == 5)
        log_p = torch.zeros(b, dtype=torch.float64, device=dev)
        if self.multiplicity is not None:
            log_p = log_p + self.multiplicity.log_prob(features, n_extra).double()
        for i in range(length):
            c = self._conditions(memory, hard_mask, numeric[:, : i + 1], kind[:, : i + 1], mask[:, : i + 1])[:, i]
            f_pt, eta, phi_i, u_m = self.flow.sample(c, has_eta[:, i], has_mass[:, i], noise[:, i].float())
            log_x = self.flow.log_prob(c, f_pt, eta, phi_i, u_m, has_eta[:, i], has_mass[:, i]).double()
            log_p = log_p + torch.where(mask[:, i], log_x, 0.0)
            if prev[i] >= 0:  # ordered slot: pT = pT_prev · exp(−exp f)
                log_pt[:, i] = log_pt[:, prev[i]] - torch.exp(f_pt.double())
            else:
                log_pt[:, i] = f_pt.double() * norm[0, 1] + norm[0, 0]
            phi[:, i] = phi_i.double()
            u_pt = (log_pt[:, i] - norm[0, 0]) / norm[0, 1]
            # jet masses below 0 (the latent allows m > −m_offset) are set to 0, and later
            # objects are conditioned on what log_prob will see
            u_m = torch.maximum(u_m.double(), (math.log(self.config.m_offset) - norm[1, 0]) / norm[1, 1])
            numeric[:, i] = (
                torch.stack(
                    [
                        u_pt,
                        eta.double(),
                        torch.cos(phi[:, i]),
                        torch.sin(phi[:, i]),
                        torch.where(has_mass[:, i], u_m, 0.0),
                    ],
                    -1,
                )
                * mask[:, i, None]
            )
        pt = torch.exp(log_pt)
        m = (torch.exp(numeric[..., 4] * norm[1, 1] + norm[1, 0]) - self.config.m_offset).clamp(min=0.0)
        fixed = torch.tensor([FIXED_MASS.get(k, 0.0) for k in range(max(self.reco_codes) + 1)], device=dev)
        m = torch.where(has_mass, m, fixed.double()[kind])
        x = torch.stack([pt, numeric[..., 1], wrap_phi(phi + phi_ref[:, None]), m], -1)
        four = torch.where(mask[..., None], from_ptetaphim(x), 0.0)
        log_det = self._reco_features(four, kind, phi_ref)[3]
        log_p = log_p + torch.where(mask, log_det, 0.0).sum(1)
        kind = torch.where(mask, kind, 0)
        if not self.config.charge_order:
            return Particles(four, kind, mask), log_p
        return RecoParticles(four, kind, mask, validate=False, charge=self._charges(kind, mask)), log_p

    def _charges(self, kind: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Charges of sampled charge-ordered base slots: per kind the first half −1, the last half +1."""
        base = self.layout.base_kinds
        charge = torch.zeros(kind.shape[1], dtype=torch.long)
        for k in set(base):
            if k in (13, 11):
                slots = [i for i, kk in enumerate(base) if kk == k]
                half = len(slots) // 2
                charge[slots[:half]], charge[slots[len(slots) - half :]] = -1, 1
        return charge.to(kind.device).expand(len(kind), -1) * mask

    # -- training -------------------------------------------------------------------------------

    @torch.no_grad()
    def fit_preprocessing(self, reco: Particles, hard: torch.Tensor, charge: torch.Tensor | None = None) -> None:
        """Fit the log pT / log m standardisation (hard and reco) and the classifier's input scaling."""
        dev = self.start.device
        p, kind, mask, _, valid = self.layout.select(reco.to(dev), charge)
        if int(valid.sum()) < 2:
            raise ValueError("fit_preprocessing needs at least two events in the layout's support.")
        hp, hkind, hmask = self.hard_particles(hard)
        hx, x = to_ptetaphim(hp)[valid.to(hp.device)], to_ptetaphim(p)[valid]
        jets = ((kind == 1) | (kind == 5))[valid] & mask[valid]
        for norm, pts, masses in (
            (self.hard_norm, hx[..., 0].flatten(), hx[..., 3].flatten()),
            (self.reco_norm, x[..., 0][mask[valid]], x[..., 3][jets]),
        ):
            for row, values in ((0, torch.log(pts)), (1, torch.log(masses + self.config.m_offset))):
                values = values[torch.isfinite(values)]
                # a spread below 1e-3 is rounding (on-shell or massless particles): keep (0, 1)
                if len(values) > 1 and float(values.std()) > 1e-3:
                    norm[row] = torch.stack([values.mean(), values.std()])
        if self.multiplicity is not None:
            rows = valid.to(hard.device)
            self.multiplicity.fit_standardisation(self._memory(tuple(t[rows] for t in (hp, hkind, hmask)), None)[3])

    def loss(self, batch: Any) -> torch.Tensor:
        """Mean −log p(x_reco, n|x_hard) (eq. 6.43 with eq. 6.45) over the batch's events in the support.

        The multiplicity classifier is trained jointly: its cross-entropy is the −log p(n|x_hard) term.
        """
        reco, hard, charge = unpack(batch, "reco", "hard", "charge")
        log_p = self.log_prob(reco, hard, charge)
        ok = torch.isfinite(log_p)
        if not bool(ok.any()):
            raise ValueError("No event of the batch lies in the layout's support; check objects/extra/max_extra.")
        return -log_p[ok].mean()

    def extra_repr(self) -> str:
        return f"objects={list(self.config.objects)}, extra={self.config.extra}, max_extra={self.config.max_extra}"
