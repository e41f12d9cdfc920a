"""What the mined strata hold, by the generated world's ground truth (evaluation only).

    python -m flows.ingest && python -m flows.index && python -m flows.mining
    python -m bench.mining_truth [hydra overrides...]

Reads `pairs.parquet` and `heldout_pairs.parquet` of `data.out_dir` and the world's
`ground_truth.parquet` (which mining never reads) and prints, per stratum, the share of
misfits (`fits` false), of traps (misfits that look right: colour in the room's palette) and
the mean similarity. In the generated world `fits` depends on room type x category only, and
every room x category gets the same stratum counts, so the misfit share is the same in every
stratum; the trap share is where look-alikes differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq

from mars_core.app.compose import load_config
from mars_core.catalogue.schema import GROUND_TRUTH_FILE
from mars_core.infra.runtime import setup_runtime
from mars_core.mining.schema import HELDOUT_PAIRS_FILE, PAIRS_FILE, STRATA


def strata_truth(pairs_file: Path, truth: dict[tuple[str, str], dict]) -> list[str]:
    """One line per stratum: pairs, misfit share, trap share, trap share among misfits."""
    rows = pq.read_table(pairs_file).to_pylist()
    lines = []
    for stratum in STRATA:
        judged = [truth[(r["room_id"], r["key"])] | r for r in rows if r["stratum"] == stratum]
        if not judged:
            lines.append(f"  {stratum:9s} no pairs")
            continue
        misfits = [r for r in judged if not r["fits"]]
        traps = sum(r["trap"] for r in judged)
        similarity = sum(r["similarity"] for r in judged) / len(judged)
        lines.append(
            f"  {stratum:9s} {len(judged):5d} pairs  misfit {len(misfits) / len(judged):.3f}  "
            f"trap {traps / len(judged):.3f}  trap among misfits "
            f"{traps / max(len(misfits), 1):.3f}  mean similarity {similarity:.3f}"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    setup_runtime()
    cfg = load_config(list(sys.argv[1:] if argv is None else argv))
    out_dir = Path(cfg.data.out_dir)
    truth_rows = pq.read_table(out_dir / GROUND_TRUTH_FILE).to_pylist()
    truth = {(r["room_id"], r["key"]): r for r in truth_rows}
    print(f"embedder {cfg.embedder.name}, mining {cfg.mining.name}, world in {out_dir}")
    for name in (PAIRS_FILE, HELDOUT_PAIRS_FILE):
        if (out_dir / name).is_file():
            print(name)
            print("\n".join(strata_truth(out_dir / name, truth)))


if __name__ == "__main__":
    main()
