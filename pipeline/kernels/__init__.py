"""Segment-aware array kernels: TA-Lib's algorithms over flat arrays of many tickers.

Each kernel takes flat float64 arrays plus ``bounds`` (segment starts and the total length, see
:func:`pipeline.frame.segment_bounds`) and restarts at every ticker boundary inside compiled
code. The per-segment functions are plain Numba-compilable Python (``register_jitable``), the
one definition of each algorithm; the kernels here compile them for the CPU, cached on disk.

Numba's cache is keyed on the file of the compiled kernel: after editing a per-segment function
imported from another file, clear ``__pycache__`` to recompile its callers.
"""
