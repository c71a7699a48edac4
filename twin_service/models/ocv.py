"""Open-circuit voltage of an LFP/graphite cell as a function of state of charge."""

from __future__ import annotations

import numpy as np

# PyBaMM `Prada2013` A123-type 2.3 Ah LFP cell, OCV = U_p - U_n over its stoichiometry window
# (REFERENCES.md). The 0 % point is a linear extrapolation of the 5-10 % segment.
OCV_SOC = np.array([0.0, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 1.00])
OCV_V = np.array(
    [2.5925, 2.7853, 2.9781, 3.1685, 3.2058, 3.2525, 3.2660, 3.2688, 3.2740, 3.3097, 3.3142,
     3.3164, 3.6000]
)


def cell_ocv(soc: np.ndarray | float) -> np.ndarray:
    """Cell open-circuit voltage (V) at state of charge `soc` (0..1), piecewise linear."""
    return np.interp(soc, OCV_SOC, OCV_V)


def pack_ocv(soc: np.ndarray | float, cells_series: int) -> np.ndarray:
    """Pack open-circuit voltage (V): series string of identical cells."""
    return cells_series * cell_ocv(soc)
