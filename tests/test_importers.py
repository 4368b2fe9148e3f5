"""Importers of users' HDF5, ROOT and LHE files, on small files the tests write themselves."""

from __future__ import annotations

import awkward as ak
import h5py
import numpy as np
import pytest
import torch
import uproot

import memzoo
from memzoo.data import DatasetWriter, read_dataset
from memzoo.events import from_ptetaphim
from memzoo.importers import import_hdf5, import_lhe, import_root

COUNTS = np.array([2, 0, 3, 1, 2])


def jets(rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = int(COUNTS.sum())
    return {
        "pt": rng.uniform(20, 200, n),
        "eta": rng.uniform(-2.5, 2.5, n),
        "phi": rng.uniform(-3, 3, n),
        "mass": rng.uniform(2, 20, n),
    }


@pytest.fixture
def root_file(tmp_path):
    """A NanoAOD-like tree: jagged Jet_pt[nJet] ..., Muon with charge, flat MET and alpha."""
    rng = np.random.default_rng(1)
    jet = jets(rng)
    muon_counts = np.array([1, 2, 0, 0, 1])
    m = int(muon_counts.sum())
    muon = {"pt": rng.uniform(10, 80, m), "eta": rng.uniform(-2, 2, m), "phi": rng.uniform(-3, 3, m)}
    muon.update(mass=np.full(m, 0.105), charge=np.array([1, -1, 1, -1], dtype=np.int32))
    branches = {
        "Jet": ak.zip({k: ak.unflatten(v, COUNTS) for k, v in jet.items()}),
        "Muon": ak.zip({k: ak.unflatten(v, muon_counts) for k, v in muon.items()}),
        "MET_pt": rng.uniform(0, 60, 5),
        "MET_phi": rng.uniform(-3, 3, 5),
        "alpha": np.linspace(-90, 90, 5),
    }
    path = tmp_path / "events.root"
    with uproot.recreate(path) as f:
        f.mktree("Events", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in branches.items()})
        f["Events"].extend(branches)
    return path, jet, muon


def test_import_root_with_jagged_branches(root_file, tmp_path):
    path, jet, muon = root_file
    mapping = {"theta": "alpha", "reco": {"Jet": 1, "Muon": 13, "MET": 12}}
    chunk = import_root(path, "Events", mapping)
    assert len(chunk) == 5 and chunk.reco.n_objects == 4  # the busiest events hold 4 objects
    assert chunk.reco.multiplicity.tolist() == (COUNTS + [1, 2, 0, 0, 1] + 1).tolist()
    assert chunk.theta[:, 0].tolist() == np.linspace(-90, 90, 5).tolist()
    # event 2: three jets, no muon, MET, in mapping order and moved to the front
    assert chunk.reco.kind[2].tolist() == [1, 1, 1, 12]
    x = torch.tensor(np.stack([jet[k][2:5] for k in ("pt", "eta", "phi", "mass")], -1))
    torch.testing.assert_close(chunk.reco.p[2, :3], from_ptetaphim(x))
    x_mu = torch.tensor([[muon[k][0] for k in ("pt", "eta", "phi", "mass")]])
    torch.testing.assert_close(chunk.reco.p[0, 2:3], from_ptetaphim(x_mu))  # event 0: 2 jets, then its muon
    assert chunk.reco.kind[1].tolist() == [13, 13, 12, 0] and chunk.charge[1, :2].tolist() == [-1, 1]
    assert (chunk.charge[chunk.reco.kind != 13] == 0).all() and chunk.accepted.all()
    met = chunk.reco.p[chunk.reco.kind == 12]
    torch.testing.assert_close(met[:, 3], torch.zeros(5, dtype=torch.float64))  # η = 0, m = 0: no pz
    # write it as a memzoo dataset (reco-only: no hard columns) and read it back
    with DatasetWriter(
        tmp_path / "d.h5", process="thj", parameters=[("alpha", "deg")], n_hard=0, hard_dim=0, n_reco_max=6
    ) as w:
        w.append(chunk)
    data = read_dataset(tmp_path / "d.h5")
    torch.testing.assert_close(data.reco.p[:, :4].double(), chunk.reco.p.float().double())


def test_import_root_collection_options_and_errors(root_file):
    path, _, _ = root_file
    chunk = import_root(path, "Events", {"reco": {"Jet": {"kind": 1, "max": 1}}}, n_max=3)
    assert chunk.reco.n_objects == 3 and chunk.reco.multiplicity.tolist() == [1, 0, 1, 1, 1]
    assert chunk.accepted.tolist() == [True, False, True, True, True]
    with pytest.raises(ValueError, match=r"tree 'Events' has no column 'Photon_pt' \(mapping entry 'reco.Photon.pt'\)"):
        import_root(path, "Events", {"reco": {"Photon": 22}})
    with pytest.raises(ValueError, match=r"unknown object kind 7"):
        import_root(path, "Events", {"reco": {"Jet": 7}})
    with pytest.raises(ValueError, match=r"row 2 has 3 reco objects, more than n_max = 2"):
        import_root(path, "Events", {"reco": {"Jet": 1}}, n_max=2)
    with pytest.raises(ValueError, match=r"has no tree 'Delphes'"):
        import_root(path, "Delphes", {"reco": {"Jet": 1}})
    with pytest.raises(ValueError, match=r"unknown mapping key\(s\) \['jets'\]"):
        import_root(path, "Events", {"jets": "Jet_pt"})


def test_import_root_nan_names_branch_and_row(tmp_path):
    rng = np.random.default_rng(2)
    jet = jets(rng)
    jet["eta"][3] = np.nan  # flat index 3 = event 2, object 1
    path = tmp_path / "nan.root"
    with uproot.recreate(path) as f:
        branches = {"Jet": ak.zip({k: ak.unflatten(v, COUNTS) for k, v in jet.items()})}
        f.mktree("Events", {"Jet": branches["Jet"].type})
        f["Events"].extend(branches)
    with pytest.raises(
        ValueError,
        match=rf"file '{path}', tree 'Events', column 'Jet_eta' has a non-finite value nan at row 2, object 1",
    ):
        import_root(path, "Events", {"reco": {"Jet": 1}})


@pytest.fixture
def hdf5_file(tmp_path):
    """A user layout: padded jet four-vectors with a count, per-object muon columns, truth momenta."""
    rng = np.random.default_rng(3)
    n = 6
    p3 = rng.normal(0, 40, (n, 3, 3))
    p4 = np.concatenate([np.linalg.norm(p3, axis=-1, keepdims=True) + 5, p3], -1)
    njet = np.array([3, 1, 0, 2, 3, 1])
    p4[np.arange(3)[None, :] >= njet[:, None]] = 0.0
    truth = np.abs(rng.normal(0, 30, (n, 2, 4)))
    truth[..., 0] += 200
    path = tmp_path / "user.h5"
    with h5py.File(path, "w") as f:
        f["jets/p4"], f["jets/n"], f["jets/btag"] = p4, njet, rng.integers(0, 2, (n, 3)).astype(bool)
        f["mu/pt"], f["mu/eta"], f["mu/phi"] = (
            rng.uniform(10, 50, (n, 2)),
            rng.normal(0, 1, (n, 2)),
            rng.uniform(-3, 3, (n, 2)),
        )
        f["mu/q"] = np.tile([1, -1], (n, 1))
        f["gen/alpha"], f["gen/p4"], f["pass"] = rng.uniform(-1, 1, n), truth, njet > 0
    return path, p4, njet, truth


def test_import_hdf5_with_a_column_mapping(hdf5_file):
    path, p4, njet, truth = hdf5_file
    mapping = {
        "theta": ["gen/alpha", 0.5],
        "hard/momenta": "gen/p4",
        "accepted": "pass",
        "reco": {
            "jets": {"kind": 1, "p4": "jets/p4", "count": "jets/n"},
            "mu": {"kind": 13, "mass": 0.0, "charge": "mu/q"},
        },
    }
    chunk = import_hdf5(path, mapping)
    assert chunk.theta.shape == (6, 2) and (chunk.theta[:, 1] == 0.5).all()
    torch.testing.assert_close(chunk.hard_momenta, torch.tensor(truth))
    assert chunk.hard_coords.shape == (6, 0)  # no process given: no coordinates
    assert chunk.accepted.tolist() == (njet > 0).tolist()
    assert chunk.reco.multiplicity.tolist() == [5, 3, 0, 4, 5, 3]  # event 2 rejected: its muons masked out
    torch.testing.assert_close(chunk.reco.p[0, :3], torch.tensor(p4[0]))
    assert chunk.charge[3].tolist() == [0, 0, 1, -1, 0]
    flat = import_hdf5(path, {"reco/p": "jets/p4", "reco/kind": 5, "theta": "gen/alpha"})
    assert flat.reco.n_objects == 3 and (flat.reco.kind[flat.reco.mask] == 5).all()


def test_import_hdf5_computes_coords_with_the_process(hdf5_file):
    path, *_ = hdf5_file
    dy = memzoo.create("process", "drell-yan")
    chunk = import_hdf5(path, {"hard/momenta": "gen/p4", "reco/p": "jets/p4", "reco/kind": 1}, process=dy)
    torch.testing.assert_close(chunk.hard_coords, dy.coords_from_momenta(chunk.hard_momenta))


def test_import_hdf5_errors_name_file_column_and_row(hdf5_file, tmp_path):
    path, *_ = hdf5_file
    with pytest.raises(ValueError, match=r"user.h5', column 'mu/pt' must have shape \(N, 4\) or \(N, k, 4\)"):
        import_hdf5(path, {"reco/p": "mu/pt", "reco/kind": 1})
    with pytest.raises(ValueError, match=r"has no column 'gen/beta' \(mapping entry 'theta'\)"):
        import_hdf5(path, {"reco/p": "jets/p4", "reco/kind": 1, "theta": "gen/beta"})
    with pytest.raises(ValueError, match=r"column 'jets/n' must have shape \(N, n_hard, 4\)"):
        import_hdf5(path, {"reco/p": "jets/p4", "reco/kind": 1, "hard/momenta": "jets/n"})
    with h5py.File(path, "r+") as f:
        f["kinds"] = np.where(np.arange(2) == 1, 7, 1)[None].repeat(6, 0)
        values = f["jets/p4"][...]
        values[4, 1, 2] = np.inf
        f["jets/p4"][...] = values
    with pytest.raises(ValueError, match=r"column 'jets/p4' has a non-finite value inf at row 4, object 1"):
        import_hdf5(path, {"reco/p": "jets/p4", "reco/kind": 1})
    with pytest.raises(ValueError, match=r"column 'kinds' has an unknown object kind 7 .* at row 0, object 1"):
        import_hdf5(
            path, {"reco": {"mu": {"kind": "kinds", "pt": "mu/pt", "eta": "mu/eta", "phi": "mu/phi", "mass": 0.0}}}
        )


class _TopHiggsJet:
    """Stand-in process with hard_kinds (t, H, light jet) and coords = flattened momenta."""

    name = "thj-like"
    hard_kinds = (6, 25, 1)

    def coords_from_momenta(self, p):
        return p.flatten(1)

    def theta(self, values=None):
        return torch.tensor([[float((values or {}).get("alpha", 0.0))]], dtype=torch.float64)


LHE_HEAD = """<LesHouchesEvents version="3.0">
<header>
hand-written test sample
</header>
<init>
2212 2212 6.500000e+03 6.500000e+03 0 0 247000 247000 -4 1
1.0e+00 1.0e-02 1.0e+00 1
</init>
"""

DY_EVENT = """<event>
 5 1 1.0 9.1e+01 7.8e-03 1.3e-01
        2 -1    0    0  501    0 0.0 0.0  {pz1} {pz1}  0.0 0. 1.
       -2 -1    0    0    0  501 0.0 0.0 -{pz2} {pz2}  0.0 0. -1.
       23  2    1    2    0    0 0.0 0.0 {pzz} {ez} 91.0 0. 0.
       13  1    3    3    0    0 {px} {py} {pzm} {em} 0.0 0. -1.
      -13  1    3    3    0    0 {mpx} {mpy} {pzp} {ep} 0.0 0. 1.
</event>
"""


def dy_event(px: float, py: float, pzm: float, pzp: float) -> str:
    em, ep = np.sqrt(px**2 + py**2 + pzm**2), np.sqrt(px**2 + py**2 + pzp**2)
    e_tot, pz_tot = em + ep, pzm + pzp
    pz1, pz2 = (e_tot + pz_tot) / 2, (e_tot - pz_tot) / 2
    return DY_EVENT.format(
        pz1=pz1, pz2=pz2, pzz=pz_tot, ez=e_tot, px=px, py=py, mpx=-px, mpy=-py, pzm=pzm, em=em, pzp=pzp, ep=ep
    )


def test_import_lhe_drell_yan(tmp_path):
    path = tmp_path / "dy.lhe"
    path.write_text(
        LHE_HEAD + dy_event(30.0, 20.0, 15.0, -40.0) + dy_event(-25.0, 5.0, 100.0, 3.0) + "</LesHouchesEvents>\n"
    )
    dy = memzoo.create("process", "drell-yan")
    chunk = import_lhe(path, dy, theta={"sin2theta_eff": 0.23})
    assert len(chunk) == 2 and chunk.hard_momenta.shape == (2, 2, 4)
    torch.testing.assert_close(chunk.hard_momenta[0, 0, 1:], torch.tensor([30.0, 20.0, 15.0], dtype=torch.float64))
    torch.testing.assert_close(chunk.hard_momenta[1, 1, 1:], torch.tensor([25.0, -5.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(chunk.hard_coords, dy.coords_from_momenta(chunk.hard_momenta))
    assert chunk.theta.tolist() == [[0.23], [0.23]] and not chunk.accepted.any() and chunk.reco.n_objects == 0


THJ_EVENT = """<event>
 9 1 1.0 1.7e+02 7.8e-03 1.1e-01
        2 -1    0    0  501    0 0.0 0.0 500.0 500.0 0.0 0. 1.
        5 -1    0    0  502    0 0.0 0.0 -400.0 400.0 0.0 0. 1.
        1  1    1    2  501    0 10.0 -20.0 300.0 300.8 0.0 0. 1.
        6  2    1    2  502    0 -50.0 60.0 -100.0 223.0 173.0 0. 1.
       25  1    1    2    0    0 40.0 -40.0 -100.0 190.0 125.0 0. 0.
        5  1    4    4  502    0 -20.0 30.0 -50.0 62.0 4.7 0. 1.
       24  2    4    4    0    0 -30.0 30.0 -50.0 115.0 80.4 0. 1.
        2  1    7    7  503    0 -10.0 20.0 -30.0 37.4 0.0 0. 1.
       -1  1    7    7    0  503 -20.0 10.0 -20.0 30.0 0.0 0. 1.
</event>
"""


def test_import_lhe_matches_hard_kinds_before_decay_products(tmp_path):
    path = tmp_path / "thj.lhe"
    # the second event has a t̄ in place of the t (tops="both"); it must fill the t slot
    antitop = THJ_EVENT.replace("\n        6  2    1", "\n       -6  2    1")
    path.write_text(LHE_HEAD + THJ_EVENT + antitop + "</LesHouchesEvents>\n")
    chunk = import_lhe(path, _TopHiggsJet(), theta={"alpha": 45.0})
    hard = chunk.hard_momenta
    assert hard[0, 0].tolist() == [223.0, -50.0, 60.0, -100.0]  # the top (status 2), not its products
    assert hard[0, 1].tolist() == [190.0, 40.0, -40.0, -100.0]
    assert hard[0, 2].tolist() == [300.8, 10.0, -20.0, 300.0]  # the d quark, not the W-decay u or d̄
    assert hard[1, 0].tolist() == [223.0, -50.0, 60.0, -100.0] and chunk.theta[:, 0].tolist() == [45.0, 45.0]


def test_import_lhe_errors_name_file_and_event(tmp_path):
    dy = memzoo.create("process", "drell-yan")
    path = tmp_path / "bad.lhe"
    electrons = dy_event(30.0, 20.0, 15.0, -40.0).replace("      -13  1", "      -11  1")
    path.write_text(LHE_HEAD + dy_event(1.0, 2.0, 3.0, 4.0) + electrons + "</LesHouchesEvents>\n")
    with pytest.raises(ValueError, match=r"bad.lhe', event 1 has no particle for hard slot 1 \(PDG -13\)"):
        import_lhe(path, dy)
    nan = dy_event(1.0, 2.0, 3.0, 4.0).replace("    0 1.0 2.0", "    0 nan 2.0")
    path.write_text(LHE_HEAD + nan + "</LesHouchesEvents>\n")
    with pytest.raises(ValueError, match=r"bad.lhe', hard particles has a non-finite value nan at row 0, particle 0"):
        import_lhe(path, dy)
    path.write_text("<LesHouchesEvents>\n<init>\nnot numbers\n</init>\n")
    with pytest.raises(ValueError, match="is not a readable LHE file"):
        import_lhe(path, dy)
