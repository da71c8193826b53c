"""Calibration for reduced-precision engines."""
