"""Sums over a worker's coworkers with a higher and a lower value of ``x``, for every row at once.

For worker i of group g (a firm-year) and a value ``x`` (a wage rank, log h):

    plus1_i  = Σ_{j∈g: x_j > x_i} (x_j − x_i),     plus2_i  = Σ_{j∈g: x_j > x_i} (x_j − x_i)²,
    minus1_i = Σ_{j∈g: x_j < x_i} (x_j − x_i),     minus2_i = Σ_{j∈g: x_j < x_i} (x_j − x_i)²,

the sums of regression (6) (MODEL.md section 8) and of the coworker terms of the decomposition of
human-capital growth (MODEL.md eq. 3, section 9.1). Ties add 0 (MEASUREMENT.md rule 6). Computed in
O(N log N) from the rows sorted by (group, x): with ``c`` the value centred within its group, the sums
over higher (lower) coworkers are reverse (forward) cumulative sums within the group, taken at the end
(start) of the block of rows tied with i, so no pair of rows is ever formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class CoworkerSums:
    """Per row, in the input's order: group size ``n`` and the four sums of the module docstring."""

    n: np.ndarray
    plus1: np.ndarray
    plus2: np.ndarray
    minus1: np.ndarray
    minus2: np.ndarray


def coworker_sums(group: np.ndarray, x: np.ndarray) -> CoworkerSums:
    """The sums of the module docstring; ``group``: integer codes of each row's group, ``x``: finite values."""
    size = len(x)
    if size == 0:
        z = np.zeros(0)
        return CoworkerSums(np.zeros(0, dtype=np.int64), z, z, z, z)
    order = np.lexsort((x, group))
    g = np.asarray(group)[order]
    v = np.asarray(x, dtype=float)[order]
    new_g = np.r_[True, g[1:] != g[:-1]]
    g_start = np.flatnonzero(new_g)
    g_id = np.cumsum(new_g) - 1
    g_size = np.diff(np.r_[g_start, size])
    c = v - (np.add.reduceat(v, g_start) / g_size)[g_id]  # centred within the group (less cancellation)

    new_b = new_g | np.r_[True, v[1:] != v[:-1]]  # blocks of tied rows
    b_start = np.flatnonzero(new_b)
    b_id = np.cumsum(new_b) - 1
    b_end = np.r_[b_start[1:], size]  # exclusive

    frame = pd.DataFrame({"g": g_id, "c": c, "c2": c * c})
    fwd = frame.groupby("g", sort=False)[["c", "c2"]].cumsum().to_numpy()  # inclusive, within the group
    rev = frame.iloc[::-1].groupby("g", sort=False)[["c", "c2"]].cumsum().iloc[::-1].to_numpy()

    first = b_start[b_id]  # the block's first row
    after = b_end[b_id]  # the row after the block
    grp_first = g_start[g_id]
    grp_end = grp_first + g_size[g_id]
    n_lt = first - grp_first
    n_gt = grp_end - after
    s_lt = np.where(n_lt[:, None] > 0, fwd[np.maximum(first - 1, 0)], 0.0)
    s_gt = np.where(n_gt[:, None] > 0, rev[np.minimum(after, size - 1)], 0.0)

    plus1 = s_gt[:, 0] - n_gt * c
    plus2 = s_gt[:, 1] - 2.0 * c * s_gt[:, 0] + n_gt * c * c
    minus1 = s_lt[:, 0] - n_lt * c
    minus2 = s_lt[:, 1] - 2.0 * c * s_lt[:, 0] + n_lt * c * c
    # exact zeros where there is no higher (lower) coworker; a sum of squares is not negative
    plus1 = np.where(n_gt > 0, plus1, 0.0)
    plus2 = np.where(n_gt > 0, np.maximum(plus2, 0.0), 0.0)
    minus1 = np.where(n_lt > 0, minus1, 0.0)
    minus2 = np.where(n_lt > 0, np.maximum(minus2, 0.0), 0.0)

    out = np.empty((5, size))
    out[:, order] = np.stack([g_size[g_id].astype(float), plus1, plus2, minus1, minus2])
    return CoworkerSums(out[0].astype(np.int64), out[1], out[2], out[3], out[4])
