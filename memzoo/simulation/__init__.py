"""Event simulation: hard events -> decays -> (Pythia shower) -> detector -> paired datasets."""
