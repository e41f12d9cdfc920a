"""What beyond the query costs: room-only and alternative-bearing searches beside a plain
search's stage 3, side by side in one run, on the same funnel and the same rooms.

    python -m bench.beyond_latency [--rooms 12] [--plain-query planter] [hydra overrides...]

Run it on a generated world with a trained student (`make demo`'s champion, or
`student.adapter=<folder>` with the fit bar it was registered with), so that the agent
scores as it serves. For each held-out room of the world, in turn (one warm-up round first):

* **plain**: `--plain-query` (planters fit every room, so nothing-fits never runs the
  alternatives): the agent's stage 3, `timings["agent"]` (k2 candidates scored, the top
  `funnel.rationale_top_n` explained);
* **alternatives** (pool and patio rooms, `--nofit-query`, a bed: nothing fits): the agent's
  stage 3 plus what the alternatives took (`details["alternatives"]["seconds"]`: stage 2's
  first cut, the budget's candidates scored, the offered ones explained); also against that
  search's own stage 3 (which explains the closest beds, at more words than a fit's reason);
* **room only** (no query): the whole search, stage 2's first cut and the agent.

Each cost is divided by the same room's plain stage 3, measured just before it, in wall time
(as the funnel times its stages; a shared machine's load drifts less within a room than
across a run) and in CPU time (this process's, one thread: on a shared machine, what the
search itself cost). Prints the median ratios of each kind (the bound is 2x) and the agent
candidates asked per request (mean, max; the budget is `funnel.beyond_budget`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from mars_core.infra.runtime import setup_runtime

OUTDOOR = ("pool", "patio")
PLAIN = "the same room's plain stage 3"
KINDS = {  # each kind: what is timed, and what it is divided by
    "alternatives": ("alternative-bearing search, stage 3 + alternatives", PLAIN),
    "own": ("  the same", "its own query's stage 3 (the search without alternatives)"),
    "beyond": ("  the alternatives alone", PLAIN),
    "room_only": ("room-only search, stage 2's first cut + agent", PLAIN),
}


def held_out_rooms(cfg, limit: int) -> list[dict]:
    """Up to `limit` held-out rooms of the world, every room type in turn."""
    import pyarrow.parquet as pq

    from mars_core.catalogue.schema import ROOMS_FILE, SPLITS_FILE

    out = Path(cfg.data.out_dir)
    test = {
        row["id"]
        for row in pq.read_table(out / SPLITS_FILE).to_pylist()
        if row["kind"] == "room" and row["split"] == "test"
    }
    rooms = [r for r in pq.read_table(out / ROOMS_FILE).to_pylist() if r["room_id"] in test]
    by_type: dict[str, list[dict]] = {}
    for room in rooms:
        by_type.setdefault(room["room_type"], []).append(room)
    interleaved = [room for group in zip(*by_type.values(), strict=False) for room in group]
    return interleaved[:limit]


class CpuClock:
    """A callable wrapped to record the CPU seconds of its latest call (this process, one
    thread): a shared machine's other work does not count, as it does in wall time."""

    def __init__(self, call) -> None:
        self.call, self.seconds = call, 0.0

    def __call__(self, *args, **kwargs):
        started = time.process_time()
        try:
            return self.call(*args, **kwargs)
        finally:
            self.seconds = time.process_time() - started


def clocked(funnel) -> dict[str, CpuClock]:
    """CPU clocks on the funnel's stage 3 and on what it asks beyond the query."""
    agent = next(step.stage for step in funnel.steps if step.stage and step.stage.name == "agent")
    clocks = {
        "stage3": CpuClock(agent.rank),
        "alternatives": CpuClock(funnel.beyond.alternatives),
        "room_only": CpuClock(funnel.beyond.search_room),
    }
    agent.rank = clocks["stage3"]
    funnel.beyond.alternatives = clocks["alternatives"]
    funnel.beyond.search_room = clocks["room_only"]
    return clocks


def measure(funnel, rooms: list[dict], args, max_pixels: int) -> dict[str, list[float]]:
    """Per room, its three searches back to back: each beyond-the-query cost as a ratio to
    the same room's plain stage 3, in wall time (a shared machine's load drifts less within
    a room than across the run) and in CPU time; and the candidates asked."""
    from mars_core.search.types import SearchRequest
    from mars_core.vision.images import load_image

    clocks = clocked(funnel)
    found: dict[str, list[float]] = {"plain": [], "asked_alt": [], "asked": []}
    found |= {f"{kind} {clock}": [] for kind in KINDS for clock in ("wall", "cpu")}
    for room in rooms:
        image = load_image(room["path"], max_pixels)
        plain = funnel.search(SearchRequest(image, args.plain_query, room["room_id"]))
        if plain.nothing_fits:
            continue  # it ran alternatives: no plain stage 3 to compare with
        wall, cpu = plain.timings["agent"], clocks["stage3"].seconds
        found["plain"].append(wall)
        if room["room_type"] in OUTDOOR:
            nofit = funnel.search(SearchRequest(image, args.nofit_query, room["room_id"]))
            if "alternatives" in nofit.details:
                extra = nofit.details["alternatives"]
                agent = nofit.timings["agent"] + extra["seconds"]
                found["alternatives wall"].append(agent / wall)
                found["own wall"].append(agent / nofit.timings["agent"])
                found["beyond wall"].append(extra["seconds"] / wall)
                own = clocks["stage3"].seconds
                found["alternatives cpu"].append((own + clocks["alternatives"].seconds) / cpu)
                found["own cpu"].append((own + clocks["alternatives"].seconds) / own)
                found["beyond cpu"].append(clocks["alternatives"].seconds / cpu)
                found["asked_alt"].append(extra["scored"])
        room_only = funnel.search(SearchRequest(image, "", room["room_id"]))
        found["room_only wall"].append(sum(room_only.timings.values()) / wall)
        found["room_only cpu"].append(clocks["room_only"].seconds / cpu)
        found["asked"].append(room_only.details["agent"]["scored"])
    return found


def report(found: dict[str, list[float]], budget: int) -> str:
    """The plain stage 3's median, each kind's median ratios to it, the candidates asked."""
    plain, n = statistics.median(found["plain"]), len(found["plain"])
    lines = [f"plain search, stage 3 (agent): median {plain * 1000:.0f} ms wall, n={n}"]
    for key, (label, against) in KINDS.items():
        wall, cpu = found[f"{key} wall"], found[f"{key} cpu"]
        if wall:
            lines.append(
                f"{label}: median {statistics.median(wall):.2f}x {against} in wall time, "
                f"{statistics.median(cpu):.2f}x in CPU time (max {max(cpu):.2f}x, n={len(cpu)})"
            )
    for key, label in (("asked_alt", "alternatives"), ("asked", "room only")):
        if found[key]:
            asked = found[key]
            lines.append(
                f"agent candidates asked, {label}: mean {statistics.fmean(asked):.1f}, "
                f"max {max(asked):.0f} (budget {budget})"
            )
    return "\n".join(lines)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rooms", type=int, default=42, help="held-out rooms measured")
    parser.add_argument("--plain-query", default="planter", help="a query that fits every room")
    parser.add_argument("--nofit-query", default="bed", help="a query nothing fits outdoors")
    parser.add_argument("overrides", nargs="*", help="hydra overrides (student, world, funnel)")
    args = parser.parse_args()
    setup_runtime()
    from mars_core.app.compose import load_config
    from mars_core.funnel.stages import build_funnel

    cfg = load_config(args.overrides)
    rooms = held_out_rooms(cfg, args.rooms)
    started = time.monotonic()
    with build_funnel(cfg) as funnel:
        if funnel.beyond is None:
            fail("the funnel has no stage 2 and agent (funnel.stages): nothing beyond the query")
        measure(funnel, rooms[:2], args, cfg.data.max_image_pixels)  # warm-up
        found = measure(funnel, rooms, args, cfg.data.max_image_pixels)
    if not found["plain"]:
        fail(f"nothing fit {args.plain_query!r} in any room: no plain stage 3 to compare with")
    print(report(found, cfg.funnel.beyond_budget))
    print(f"{len(rooms)} held-out rooms, {time.monotonic() - started:.0f} s in all")


if __name__ == "__main__":
    main()
