"""aplab: deep learning with noisy labels, with the robust losses of Ma et al. (ICML 2020).

The library lives in sub-packages with one job each: ``losses``, ``noise``, ``data``, ``models``,
``train``, ``tracking``, ``study``, ``report``; ``cli`` wires them to the ``aplab`` command.
"""

__version__ = "0.1.0"
