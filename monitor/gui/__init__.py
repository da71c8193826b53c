"""The Qt waterfall (PyQt5 and pyqtgraph, the ``gui`` extra).

- ``ring``: the waterfall's history, fed from published frames (no Qt).
- ``labels``: the carriers of a frame, as the waterfall labels them (no Qt).
- ``recorder``: recording switched on and off while the pipeline runs (no Qt).
- ``session``: the runs behind the window, each in a worker thread (no Qt).
- ``waterfall``: the spectrum and waterfall widget with the segmentation overlay.
- ``window``: the main window: controls, shortcuts, status bar.
- ``app``: ``run_gui``, what ``prmnet-monitor`` runs without ``--headless``.
- ``bench``: ``prmnet bench gui``, the display frame rate.
"""
