"""The sparkline column: each ticker's last closes as one fixed-size Arrow list.

Kept apart from :mod:`pipeline.features` so that the snapshot documents (and the service that
builds them) read sparklines without importing the Numba kernels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

SPARKLINE = 30
# A fixed-size list column: serialises as one Arrow buffer, not thousands of Python objects.
SPARKLINE_DTYPE = pd.ArrowDtype(pa.list_(pa.float64(), SPARKLINE))


def sparkline_matrix(column: pd.Series) -> np.ndarray:
    """A sparkline column as a ``(rows, SPARKLINE)`` float array (NaN where history is short)."""
    values = pa.chunked_array(column.array._pa_array).combine_chunks()
    return values.flatten().to_numpy(zero_copy_only=False).reshape(-1, SPARKLINE)
