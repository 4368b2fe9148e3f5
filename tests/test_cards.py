"""Model cards: parsing, building by name, and errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from memzoo.cards import load_card

REGISTRY = Path(__file__).parents[1] / "registry"


def test_every_registry_card_builds():
    cards = sorted(REGISTRY.glob("*/*.toml"))
    assert cards, "registry/ has no cards"
    for path in cards:
        card = load_card(path)
        assert path.parent.name == card.process, f"{path} is filed under the wrong process"
        assert card.entry["name"].startswith(f"memzoo-{card.process}-")
        built = card.build()
        assert built["process"].name == card.process
        assert set(built) == {"process", *card.components}


def test_card_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[process]\nname = "drell-yan"\n[transfr]\nbackend = "gaussian"\n')
    with pytest.raises(ValueError, match=r"unknown table\(s\) \['transfr'\]"):
        load_card(bad)
    bad.write_text('[process]\nname = "drell-yan"\n[transfer]\nname = "gaussian"\n')
    with pytest.raises(ValueError, match=r"\[transfer\] needs backend = .*unknown key\(s\) \['name'\]"):
        load_card(bad)
    bad.write_text("[transfer]\nbackend = 'x'\n")
    with pytest.raises(ValueError, match=r"the \[process\] table needs a name"):
        load_card(bad)
    bad.write_text("[process\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_card(bad)
    with pytest.raises(FileNotFoundError, match="No model card"):
        load_card(tmp_path / "missing.toml")
    bad.write_text('[process]\nname = "toy-muon"\n[transfer]\nbackend = "toy-smear"\n[transfer.config]\nwidth = 1\n')
    with pytest.raises(ValueError, match=r"Unknown transfer 'toy-smear' config key\(s\) \['width'\]"):
        load_card(bad).build()


def test_sizes_merge_over_the_base(tmp_path):
    card = tmp_path / "c.toml"
    card.write_text(
        '[process]\nname = "toy-muon"\n[transfer]\nbackend = "toy-smear"\n'
        "[transfer.config]\npt_resolution = 3.0\neta_resolution = 0.05\n"
        "[size.paper.transfer.config]\npt_resolution = 1.0\n"
    )
    base, paper = load_card(card), load_card(card, size="paper")
    assert base.components["transfer"][1] == {"pt_resolution": 3.0, "eta_resolution": 0.05}
    assert paper.components["transfer"][1] == {"pt_resolution": 1.0, "eta_resolution": 0.05}
    assert paper.size == "paper" and "size" not in paper.tables
    with pytest.raises(ValueError, match=r"has no size 'small'; it defines \['paper'\]"):
        load_card(card, size="small")
