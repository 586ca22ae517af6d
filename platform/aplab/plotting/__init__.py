"""Figures: the shared helpers (``figure``) and a run's own plots (``run``), below every package that draws."""
