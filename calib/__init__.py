"""Calibration of reduced-precision graphs: INT8 and FP8 Q/DQ ONNX made from generator scenes.

``recipe.toml`` says what the quantizer sees and what stays in higher precision
(:mod:`calib.recipe`); :mod:`calib.dataset` makes and stores the calibration frames;
:mod:`calib.quantize` makes the Q/DQ graph and accepts it only if it keeps the float32 graph's
accuracy (``prmnet calib``).
"""
