"""Physics building blocks: PDFs, Lorentz algebra, helicity amplitudes, phase space, SM constants."""
