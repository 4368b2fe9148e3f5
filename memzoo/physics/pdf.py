"""Batched LHAPDF ``lhagrid1`` parton densities in torch.

Two interpolation schemes over the same knots: ``"lhapdf"`` (default; log-bicubic + continuation, as
LHAPDF 6) and ``"pythia"`` (Pythia 8's ``LHAGrid1`` Lagrange scheme with frozen edges, see
:mod:`memzoo.physics.pdf_pythia`), which reproduces ``pythia8mc``'s own evaluation of the grid.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import sys
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from memzoo.physics import pdf_pythia

__all__ = ["PDF", "available_pdfs", "load_pdf"]

# Evaluation gathers a (points, 4 Q knots, 4 coefficients, flavours) block; chunking the batch keeps
# that temporary near 128 MiB of float64 however large the batch is.
_CHUNK_ELEMENTS = 1 << 24
# Defaults that LHAPDF 6 applies to lhagrid1 sets when the .info file does not override them.
_DEFAULT_META = {"Interpolator": "LogBicubic", "Extrapolator": "Continuation", "ForcePositive": "0"}
_INTERPOLATIONS = ("lhapdf", "pythia")
_MEMBER_FILE = re.compile(r"^(?P<name>.+)_(?P<member>\d{4})\.dat$")


def _concrete(device) -> torch.device:
    """Device with an explicit index (``cuda`` -> ``cuda:0``) so it matches ``tensor.device`` keys."""
    return torch.empty(0, device=device if device is not None else "cpu").device


def _data_dirs() -> list[Path]:
    """Folders searched for PDF sets, in priority order (duplicates and missing folders dropped).

    ``LHAPDF_DATA_PATH`` (colon-separated) comes first, then the grids shipped with the ``pythia8mc``
    wheel in ``<prefix>/share/Pythia8/pdfdata``; that prefix is found from ``sys.prefix`` and from the
    installed extension's location (they differ for ``--user``/``--target`` installs), plus the
    ``PYTHIA8DATA`` variable, which points at Pythia's ``xmldoc`` sibling folder.
    """
    cands = [Path(p) for p in os.environ.get("LHAPDF_DATA_PATH", "").split(os.pathsep) if p]
    cands.append(Path(sys.prefix) / "share" / "Pythia8" / "pdfdata")
    spec = importlib.util.find_spec("pythia8mc")  # locates the module without importing it
    if spec is not None and spec.origin:
        cands += [p / "share" / "Pythia8" / "pdfdata" for p in Path(spec.origin).resolve().parents]
    if os.environ.get("PYTHIA8DATA"):
        cands.append(Path(os.environ["PYTHIA8DATA"]).parent / "pdfdata")
    out: list[Path] = []
    for c in cands:
        if c.is_dir() and c.resolve() not in {o.resolve() for o in out}:
            out.append(c)
    return out


def _is_lhagrid1(path: Path) -> bool:
    """Whether a flat ``*_NNNN.dat`` file is an lhagrid1 member (Pythia ships other formats too)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(2048)
    except OSError:
        return False
    return "lhagrid1" in head.lower()


def available_pdfs() -> list[str]:
    """Names of the lhagrid1 sets found in the search folders (LHAPDF layout and flat files).

    Returns:
        Sorted set names, e.g. ``"NNPDF23_lo_as_0130_qed"``; members are not listed.
    """
    names: set[str] = set()
    for d in _data_dirs():
        for p in d.iterdir():
            if p.is_dir() and any(p.glob(f"{p.name}_[0-9][0-9][0-9][0-9].dat")):
                names.add(p.name)
            elif p.is_file() and (m := _MEMBER_FILE.match(p.name)) and _is_lhagrid1(p):
                names.add(m.group("name"))
    return sorted(names)


def _find_member(name: str, member: int) -> tuple[Path, Path | None]:
    """Locate ``(data file, .info file or None)`` for a set member; raise listing what exists."""
    fname = f"{name}_{member:04d}.dat"
    dirs = _data_dirs()
    for d in dirs:
        for path, info in ((d / name / fname, d / name / f"{name}.info"), (d / fname, d / f"{name}.info")):
            if path.is_file():
                return path, (info if info.is_file() else None)
    raise FileNotFoundError(
        f"PDF set {name!r} member {member} ({fname}) not found. Searched: "
        f"{[str(d) for d in dirs] or 'no existing folder'} (set LHAPDF_DATA_PATH to add folders). "
        f"Available sets: {available_pdfs()}"
    )


def _read_meta(text: str) -> dict[str, str]:
    """Flat ``Key: value`` pairs of a YAML-like header/info block (lists are kept as raw strings)."""
    meta = {}
    for line in text.splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            key, _, val = line.partition(":")
            meta[key.strip()] = val.split("#")[0].strip()
    return meta


def _read_lhagrid1(path: Path) -> tuple[dict[str, str], np.ndarray, list[np.ndarray], list[int], np.ndarray]:
    """Parse an lhagrid1 member file.

    Layout: a metadata block, then per Q subgrid a block ``x knots / Q knots / PDG ids / rows`` closed by
    ``---``. Rows run x-major, Q-minor (row ``ix * nQ + iQ``), one column per PDG id, holding x·f.

    Returns:
        ``(meta, x_knots (nx,), [Q knots (GeV) per subgrid], pids, xf (nx, nQ_total, nflav))``; the
        subgrids are concatenated along Q, so a flavour threshold appears as a repeated Q knot.
    """
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if not ln.startswith("#")]
    cuts = [i for i, ln in enumerate(lines) if ln == "---"]
    meta = _read_meta("\n".join(lines[: cuts[0]] if cuts else lines))
    if meta.get("Format", "lhagrid1").lower() != "lhagrid1" or len(cuts) < 2:
        raise ValueError(f"{path} is not an lhagrid1 file (Format={meta.get('Format')!r})")
    xs, qs, pids, blocks = None, [], None, []
    for a, b in itertools.pairwise(cuts):
        block = lines[a + 1 : b]
        bx = np.array(block[0].split(), dtype=np.float64)
        bq = np.array(block[1].split(), dtype=np.float64)
        bp = [int(v) for v in block[2].split()]
        if xs is None:
            xs, pids = bx, bp
        elif not np.array_equal(bx, xs) or bp != pids:
            raise ValueError(f"{path}: subgrids must share x knots and flavours (LHAPDF requirement)")
        vals = np.array(" ".join(block[3:]).split(), dtype=np.float64)
        if vals.size != bx.size * bq.size * len(bp):
            raise ValueError(f"{path}: {vals.size} values in a {bx.size}x{bq.size}x{len(bp)} subgrid")
        blocks.append(vals.reshape(bx.size, bq.size, len(bp)))
        qs.append(bq)
    return meta, xs, qs, pids, np.concatenate(blocks, axis=1)


class PDF:
    """One member of an lhagrid1 set, evaluated batched with LHAPDF 6's or Pythia 8's algorithms.

    ``interpolation="lhapdf"`` (LogBicubic): in each x interval a cubic Hermite in log x whose knot slopes
    are finite differences in log x (mean of left/right slopes, one-sided at the x edges); the four cubics at
    neighbouring Q² knots feed a cubic Hermite in log Q² with the same slope rule, one-sided at the edges
    of each Q subgrid, and bilinear (log x, log Q²) when a subgrid has only two Q knots. Values outside
    the grid follow LHAPDF's Continuation extrapolator. Negative grid values are returned as they are
    (LHAPDF ``ForcePositive: 0``); Pythia's ``PDF::xf`` clips them to zero, its ``xfRaw`` does not.

    ``interpolation="pythia"``: Pythia 8's ``LHAGrid1`` scheme (four-point Lagrange cubics in ln x and
    ln Q per subgrid, linear in ln Q for subgrids of < 4 knots), equal to ``pythia8mc``'s ``xfRaw`` to
    rounding. Outside the grid it freezes as Pythia does (edge Q row; first x column below xmin), and
    ``ForcePositive`` is ignored (Pythia does not read it); details in :mod:`memzoo.physics.pdf_pythia`.

    Attributes:
        name, member: The set name and member number. interpolation: ``"lhapdf"`` or ``"pythia"``.
        pids: PDG ids present in the file (21 gluon, 22 photon in QED sets).
        xmin, xmax: First and last x knot. q2min, q2max: First and last Q² knot in GeV².
    """

    def __init__(
        self, name: str, member: int, path: Path, info: Path | None = None, device=None, interpolation="lhapdf"
    ) -> None:
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")
        self.interpolation = interpolation
        meta, xs, qs, pids, xf = _read_lhagrid1(path)
        q2s = np.concatenate(qs) ** 2  # LHAPDF works in Q², squared in double precision
        # Without a .info file (the pythia8mc wheel ships only .dat members) the lhagrid1 defaults hold.
        self.meta = {**_DEFAULT_META, **meta, **(_read_meta(info.read_text()) if info else {})}
        for key, ours in (("Interpolator", "LogBicubic"), ("Extrapolator", "Continuation")):
            if interpolation == "lhapdf" and self.meta[key].lower() not in {ours.lower(), "logcubic"}:
                warnings.warn(f"{name}: {key} {self.meta[key]} requested; using {ours}", stacklevel=3)
        self.name, self.member, self.pids = name, member, list(pids)
        self.xmin, self.xmax = float(xs[0]), float(xs[-1])
        self.q2min, self.q2max = float(q2s[0]), float(q2s[-1])
        self._force_positive = int(self.meta["ForcePositive"]) if interpolation == "lhapdf" else 0
        if interpolation == "lhapdf":
            self._host = self._build_tables(xs, q2s, xf)
            self._two_knot_subgrid = bool((self._host["lower"] & self._host["upper"]).any())
        else:
            self._host = {**pdf_pythia.build_tables(xs, qs, xf), "q2": torch.from_numpy(q2s)}
        self.device = _concrete(device)
        self._tables = {self.device: {k: v.to(self.device) for k, v in self._host.items()}}

    @staticmethod
    def _build_tables(xs: np.ndarray, q2s: np.ndarray, xf: np.ndarray) -> dict[str, Tensor]:
        """Precompute knot slopes and per-interval cubic coefficients once, so evaluation is gathers."""
        lx, lq = np.log(xs), np.log(q2s)
        nx, nq, _ = xf.shape
        # Slopes d(xf)/dlog x at every knot of every Q row: mean of adjacent slopes, one-sided at edges.
        sec = np.diff(xf, axis=0) / np.diff(lx)[:, None, None]
        slope = np.empty_like(xf)
        slope[0], slope[-1], slope[1:-1] = sec[0], sec[-1], 0.5 * (sec[:-1] + sec[1:])
        # Hermite cubic per x interval as a t³ + b t² + c t + d, t in [0, 1] (LHAPDF's coefficient form).
        h = np.diff(lx)[:, None, None]
        vl, vh, dl, dh = xf[:-1], xf[1:], slope[:-1] * h, slope[1:] * h
        coef = np.stack([dh + dl - 2 * vh + 2 * vl, 3 * vh - 3 * vl - 2 * dl - dh, dl, vl], axis=-1)
        # Extra all-zero flavour column: absent PDG ids gather zeros instead of branching.
        coef = np.concatenate([coef, np.zeros_like(coef[:, :, :1])], axis=2)
        # Q-direction bookkeeping per Q interval iq (uses knots iq-1 .. iq+2); a repeated knot marks a
        # subgrid edge, where LHAPDF switches to the one-sided difference.
        iq = np.arange(nq - 1)
        lower = (iq == 0) | (q2s[iq] == q2s[np.maximum(iq - 1, 0)])
        upper = (iq == nq - 2) | (q2s[iq + 1] == q2s[np.minimum(iq + 2, nq - 1)])
        dlq = np.diff(lq)
        with np.errstate(divide="ignore", invalid="ignore"):  # zero-width threshold intervals
            r0 = np.where(lower, 0.0, dlq / dlq[np.maximum(iq - 1, 0)])
            r2 = np.where(upper, 0.0, dlq / dlq[np.minimum(iq + 1, nq - 2)])
            inv_dlq = np.where(dlq > 0, 1.0 / dlq, 0.0)
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a))
        return {
            "x": t(xs), "q2": t(q2s), "lx": t(lx), "lq": t(lq), "inv_dlx": t(1.0 / np.diff(lx)),
            "inv_dlq": t(inv_dlq), "coef": t(coef.reshape((nx - 1) * nq, -1, 4).transpose(0, 2, 1)),
            "lower": t(lower), "upper": t(upper), "r0": t(r0), "r2": t(r2),
        }  # fmt: skip

    def to(self, device) -> PDF:
        """Return a view of this PDF whose tables live on ``device`` (shares the host copy)."""
        new = object.__new__(PDF)
        new.__dict__.update(self.__dict__)
        new.device = _concrete(device)
        new._tables = dict(self._tables)
        new._tab(new.device)
        return new

    def _tab(self, device: torch.device) -> dict[str, Tensor]:
        if device not in self._tables:  # lazily mirror onto the caller's device, once
            self._tables[device] = {k: v.to(device) for k, v in self._host.items()}
        return self._tables[device]

    def _col(self, pid: int) -> int:
        pid = 21 if pid == 0 else pid
        return self.pids.index(pid) if pid in self.pids else len(self.pids)  # last = zero column

    def _interp(self, tab: dict[str, Tensor], x: Tensor, q2: Tensor, cols: Tensor) -> Tensor:
        """Log-bicubic interpolation for in-grid points. x, q2: (N,); cols: (F,). Returns (N, F)."""
        nx, nq = tab["x"].numel(), tab["q2"].numel()
        # upper_bound - 1 clamped, as LHAPDF: x = xmax uses the last interval with t = 1, and Q² on a
        # threshold belongs to the subgrid above it.
        ix = (torch.searchsorted(tab["x"], x, right=True) - 1).clamp_(0, nx - 2)
        iq = (torch.searchsorted(tab["q2"], q2, right=True) - 1).clamp_(0, nq - 2)
        tx = (torch.log(x) - tab["lx"][ix]) * tab["inv_dlx"][ix]
        tq = (torch.log(q2) - tab["lq"][iq]) * tab["inv_dlq"][iq]
        rows = (iq[:, None] + torch.arange(-1, 3, device=x.device)).clamp_(0, nq - 1)
        g = tab["coef"][..., cols][ix[:, None] * nq + rows]  # (N, 4 Q knots, 4 coefficients, F)
        # The result is linear in the gathered coefficients: x-cubic powers T_c (a t³ + b t² + c t + d)
        # times Q-Hermite weights W_k of the four x-cubics vll, vl, vh, vhh, with LHAPDF's slopes
        # vdl = a_l (vh - vl) + b_l (vl - vll), vdh = a_h (vh - vl) + b_h (vhh - vh) folded into W.
        one = torch.ones_like(tx)
        t2, t3 = tq * tq, tq * tq * tq
        h00, h10, h01, h11 = 2 * t3 - 3 * t2 + 1, t3 - 2 * t2 + tq, 3 * t2 - 2 * t3, t3 - t2
        lower, upper = tab["lower"][iq], tab["upper"][iq]
        a_l, a_h = torch.where(lower, 1.0, 0.5), torch.where(upper, 1.0, 0.5)
        b_l = torch.where(lower, 0.0, 0.5 * tab["r0"][iq])
        b_h = torch.where(upper, 0.0, 0.5 * tab["r2"][iq])
        w_l = h00 - h10 * a_l + h10 * b_l - h11 * a_h
        w_h = h01 + h10 * a_l + h11 * a_h - h11 * b_h
        w = torch.stack([-h10 * b_l, w_l, w_h, h11 * b_h], dim=1)
        tpow = torch.stack([tx * tx * tx, tx * tx, tx, one], dim=1)
        if self._two_knot_subgrid:  # LHAPDF falls back to bilinear in (log x, log Q²) there
            both = (lower & upper)[:, None]
            w = torch.where(both, torch.stack([0 * tq, 1 - tq, tq, 0 * tq], dim=1), w)
            tpow = torch.where(both, torch.stack([tx, tx, tx, one], dim=1), tpow)  # t(a+b+c) + d
        m = (w[:, :, None] * tpow[:, None, :]).reshape(-1, 1, 16)
        return torch.bmm(m, g.reshape(g.shape[0], 16, -1)).squeeze(1)

    def _eval(self, x: Tensor, q2: Tensor, cols: list[int]) -> Tensor:
        """Interpolate/extrapolate flat float64 points (N,) for flavour columns; returns (N, F)."""
        tab = self._tab(x.device)
        colt = torch.tensor(cols, device=x.device)
        out = torch.empty(x.shape[0], len(cols), dtype=torch.float64, device=x.device)
        step = max(1, _CHUNK_ELEMENTS // (16 * len(cols)))
        for s in range(0, x.shape[0], step):
            out[s : s + step] = self._eval_chunk(tab, x[s : s + step], q2[s : s + step], colt)
        if self._force_positive:
            out.clamp_(min=0.0 if self._force_positive == 1 else 1e-10)
        return out

    def _eval_chunk(self, tab: dict[str, Tensor], x: Tensor, q2: Tensor, cols: Tensor) -> Tensor:
        bad = ~((x > 0) & (x <= self.xmax) & (q2 >= 0))  # also catches NaN
        if self.interpolation == "pythia":  # freezes outside the grid; bad points redone as NaN
            out = pdf_pythia.interpolate(tab, torch.where(bad, self.xmax, x), torch.where(bad, 0.0, q2), cols)
            return torch.where(bad[:, None], torch.nan, out)
        inside = (x >= self.xmin) & (q2 >= self.q2min) & (q2 <= self.q2max) & ~bad
        # Clamp into the grid so the in-grid pass is well defined everywhere; outside points are redone.
        xc, qc = x.clamp(self.xmin, self.xmax), q2.clamp(self.q2min, self.q2max)
        out = self._interp(tab, xc, qc, cols)
        idx = torch.nonzero(~inside & ~bad).squeeze(1)
        if idx.numel():
            out[idx] = self._continuation(tab, x[idx], q2[idx], cols)
        return torch.where(bad[:, None], torch.nan, out)

    def _continuation(self, tab: dict[str, Tensor], x: Tensor, q2: Tensor, cols: Tensor) -> Tensor:
        """LHAPDF's Continuation extrapolator (MSTW scheme) for points outside the grid; returns (N, F).

        Below xmin: linear in log x through the first two x knots, in log(xf) when both anchors exceed
        1e-3. Above q2max: the same in log Q² through the last two Q² knots. Below q2min: xf(q2min) ×
        (Q²/q2min)^(γ r + 1 − r), r = Q²/q2min, with γ = dlog f/dlog Q² from a 1 % step (γ ≥ −2.5; γ = 1
        if |xf(q2min)| < 1e-5), so densities vanish as Q² → 0.
        """
        xk, qk = tab["x"], tab["q2"]
        x0, x1, q2lo, q2hi, q2hi1 = xk[0], xk[1], qk[0], qk[-1], qk[-2]
        lowx, highq, lowq = x < self.xmin, q2 > self.q2max, q2 < self.q2min
        xa0, xa1 = torch.where(lowx, x0, x), torch.where(lowx, x1, x)
        qa0 = torch.where(highq, q2hi, torch.where(lowq, q2lo, q2))
        qa1 = torch.where(highq, q2hi1, torch.where(lowq, 1.01 * q2lo, q2))
        n = x.shape[0]
        anchors = self._interp(tab, torch.cat([xa0, xa1, xa0, xa1]), torch.cat([qa0, qa0, qa1, qa1]), cols)
        f00, f10, f01, f11 = anchors.split(n)  # f{x anchor}{Q² anchor}

        def lin(v, a, b, ya, yb):  # LHAPDF's _extrapolateLinear, in log v
            w = ((torch.log(v) - torch.log(a)) / (torch.log(b) - torch.log(a)))[:, None]
            pos = (ya > 1e-3) & (yb > 1e-3)
            la, lb = torch.log(ya.clamp(min=1e-300)), torch.log(yb.clamp(min=1e-300))  # used where pos
            return torch.where(pos, torch.exp(la + w * (lb - la)), ya + w * (yb - ya))

        xe = lambda ya, yb: lin(x, x0.expand(n), x1.expand(n), ya, yb)
        qe = lambda ya, yb: lin(q2, q2hi.expand(n), q2hi1.expand(n), ya, yb)
        lx_, hq, lq_ = lowx[:, None], highq[:, None], lowq[:, None]
        # Q² above the grid: extrapolate both x anchors in Q² first, then in x if needed.
        g0, g1 = qe(f00, f01), qe(f10, f11)
        high = torch.where(lx_, xe(g0, g1), g0)
        # Q² below the grid: values at (x, q2min) and (x, 1.01 q2min), x-extrapolated if needed.
        p0, p1 = torch.where(lx_, xe(f00, f10), f00), torch.where(lx_, xe(f01, f11), f01)
        anom = torch.where(p0.abs() >= 1e-5, ((p1 - p0) / p0 / 0.01).clamp(min=-2.5), torch.ones_like(p0))
        r = (q2 / self.q2min)[:, None]
        low = p0 * torch.pow(r, anom * r + 1.0 - r)
        return torch.where(hq, high, torch.where(lq_, low, xe(f00, f10)))

    def _prepare(self, x, q2) -> tuple[Tensor, Tensor, torch.Size]:
        x = torch.as_tensor(x, dtype=torch.float64)
        q2 = torch.as_tensor(q2, dtype=torch.float64, device=x.device)
        x, q2 = torch.broadcast_tensors(x, q2)
        return x.reshape(-1), q2.reshape(-1), x.shape

    def xfxq2(self, pid: int, x: Tensor, q2: Tensor) -> Tensor:
        """x·f(x, Q²) for one flavour.

        Args:
            pid: PDG id (0 or 21 gluon, 22 photon); ids absent from the set give zeros, as in LHAPDF.
            x: Momentum fraction, any shape broadcastable with ``q2``; valid in (0, xmax].
            q2: Factorisation scale Q² in GeV², ≥ 0; outside [q2min, q2max] it is extrapolated
                (``"lhapdf"``) or frozen at the edge (``"pythia"``).

        Returns:
            float64 tensor of the broadcast shape on ``x``'s device; NaN where x ∉ (0, xmax] or Q² < 0
            (LHAPDF raises there; NaN keeps batches free of host syncs for validation).
        """
        xf, qf, shape = self._prepare(x, q2)
        return self._eval(xf, qf, [self._col(pid)])[:, 0].reshape(shape)

    def xfxq2_all(self, x: Tensor, q2: Tensor) -> Tensor:
        """x·f(x, Q²) for pids −6..6 at once (index pid + 6; the gluon at index 6), as LHAPDF's vector call.

        Args:
            x, q2: As for :meth:`xfxq2`.

        Returns:
            float64 tensor of shape ``(*broadcast shape, 13)`` on ``x``'s device.
        """
        xf, qf, shape = self._prepare(x, q2)
        return self._eval(xf, qf, [self._col(p) for p in range(-6, 7)]).reshape(*shape, 13)

    def __repr__(self) -> str:
        return f"PDF({self.name!r}, member={self.member}, device={self.device}, {self.interpolation!r})"


@lru_cache(maxsize=32)
def _load_cached(name: str, member: int, device: str, interpolation: str) -> PDF:
    path, info = _find_member(name, member)
    return PDF(name, member, path, info, device=device, interpolation=interpolation)


def load_pdf(name: str = "NNPDF23_lo_as_0130_qed", member: int = 0, device=None, interpolation: str = "lhapdf") -> PDF:
    """Load (once per name, member, device and interpolation) a member of an lhagrid1 set.

    Args:
        name: Set name, looked up in ``LHAPDF_DATA_PATH`` then in the pythia8mc wheel's ``pdfdata``.
        member: Member number (``NAME_0000.dat`` is the central member).
        device: torch device for the tables (default CPU).
        interpolation: ``"lhapdf"`` (LHAPDF 6 log-bicubic + continuation) or ``"pythia"`` (Pythia 8's
            ``LHAGrid1`` scheme, frozen outside the grid), see :class:`PDF`.

    Returns:
        The cached :class:`PDF`.

    Raises:
        FileNotFoundError: The set/member is missing; the message lists available sets and folders.
        ValueError: Unknown ``interpolation``.
    """
    interp = str(interpolation).lower()
    if interp not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")
    return _load_cached(name, int(member), str(_concrete(device)), interp)
