"""The similarity histogram per stratum: do lookalikes sit to the right of far and random?"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from matplotlib.figure import Figure

from mars_core.mining.schema import STRATA


def similarity_figure(pairs_file: Path | str, bins: int) -> Figure:
    """One histogram of room-to-product similarity per stratum, on shared bins.

    A bare `Figure` (no pyplot): no global state, no display backend, safe in worker threads.
    """
    table = pq.read_table(pairs_file, columns=["stratum", "similarity"])
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    similarity = table["similarity"].to_numpy()
    edges = np.histogram_bin_edges(similarity if similarity.size else [0.0, 1.0], bins=bins)
    for stratum in STRATA:
        values = table.filter(pc.equal(table["stratum"], stratum))["similarity"].to_numpy()
        axes.hist(
            values, bins=edges, histtype="step", linewidth=1.5, label=f"{stratum} ({values.size})"
        )
    axes.set_xlabel("cosine similarity, room photo vs product image")
    axes.set_ylabel("pairs")
    axes.set_title(f"{Path(pairs_file).name}: similarity per stratum")
    axes.legend()
    figure.tight_layout()
    return figure
