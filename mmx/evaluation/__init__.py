"""``mmx eval``: what a trained run is worth beyond accuracy (calibration, robustness, OOD detection)."""
