"""Mining: for each room and each vocabulary category, the products worth a teacher's label.

Per (room, category) three strata, chosen by SigLIP similarity between the room photo and the
product images of the current index build:

* **lookalike**: the most similar products (the blue bed by the blue pool) — hard negatives
  when the teacher says they do not fit;
* **far**: the least similar — hard positives when they fit;
* **random**: seeded controls from the rest, so the labels are not only extremes.

Candidates come from LanceDB vector searches with a prefilter (the category, and only products
of the room's split): the nearest `search_depth` products, and the farthest `search_depth`
(a search with the negated room vector). Nothing loops over the catalogue in Python. A pair's
`rank` is its place among the products scored for its room x category (1 = most similar);
when `search_depth` covers the category that is its exact rank in the category.

Train rooms meet train products only and test rooms test products only, so no test image
leaks into training pairs; an item listed on several marketplaces is paired once. Rooms are
mined in shards (one mapped task each); results are sorted before writing, so the file does
not depend on how shards were spread or finished.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from mars_core.catalogue.schema import ROOMS_FILE, SPLITS_FILE
from mars_core.config import IndexConfig, MiningConfig, VocabularyConfig
from mars_core.funnel.stages import SIGLIP
from mars_core.index.lance import VectorIndex, sql_in, vector_matrix
from mars_core.index.store import IndexSnapshot
from mars_core.index.vocabulary import category_query
from mars_core.infra.batching import batched
from mars_core.infra.io import atomic_write_parquet
from mars_core.infra.skipped import Skipped
from mars_core.mining.schema import HELDOUT_PAIRS_FILE, PAIRS_FILE, PAIRS_SCHEMA, STRATA
from mars_core.search.visual import VisualStage
from mars_core.vision.embedder import Embedder

SPLITS = ("train", "test")
SORT_KEYS = [("room_id", "ascending"), ("category", "ascending"), ("rank", "ascending")]


@dataclass(frozen=True)
class MiningRoom:
    room_id: str
    room_type: str
    path: str
    split: str


@dataclass(frozen=True)
class RoomShard:
    """The rooms one mapped task mines; all of one split."""

    split: str
    number: int  # position among the split's shards
    rooms: tuple[MiningRoom, ...]


@dataclass(frozen=True)
class MiningPlan:
    shards: list[RoomShard]
    skipped: list[Skipped]  # rooms without a split


@dataclass(frozen=True)
class CandidatePool:
    """The products a (room, category) request of one split may pair with."""

    category: str
    query: str
    keys: tuple[str, ...]  # same-split products of the category in the index, sorted
    where: str  # LanceDB prefilter selecting exactly `keys`


@dataclass
class ShardResult:
    """A shard's pairs (PAIRS_SCHEMA rows) and the rooms it could not mine, with why."""

    split: str
    rows: list[dict]
    rooms: int  # rooms mined
    short: int  # (room, category) requests with products but fewer than the configured pairs
    skipped: list[Skipped] = field(default_factory=list)


@dataclass
class MiningReport:
    """What a mining run wrote: per split, pair counts by stratum and category."""

    pairs_file: str
    heldout_file: str | None
    pairs: int
    heldout_pairs: int
    rooms: dict[str, int]  # split -> rooms mined
    strata: dict[str, int]  # training pairs per stratum
    categories: dict[str, int]  # training pairs per vocabulary category (0: no products)
    heldout_strata: dict[str, int]
    short: int  # requests that got fewer pairs than configured (small categories)
    skipped: list[Skipped]  # rooms that could not be mined

    def summary(self) -> str:
        """What the mining command prints: the files, the mix, and what came up short."""
        lines = [f"\n{self.pairs} training pairs -> {self.pairs_file}"]
        if self.heldout_file:
            lines.append(f"{self.heldout_pairs} held-out pairs -> {self.heldout_file}")
        lines.append(f"  strata: {', '.join(f'{s} {n}' for s, n in self.strata.items())}")
        lines.append(f"  rooms: {', '.join(f'{s} {n}' for s, n in self.rooms.items())}")
        empty = [category for category, n in self.categories.items() if n == 0]
        if empty:
            lines.append(f"  no training products (no pairs): {', '.join(empty)}")
        if self.short:
            lines.append(f"  {self.short} room x category requests got fewer pairs than configured")
        lines += [f"  skipped room {entry}" for entry in self.skipped]
        return "\n".join(lines)

    def metrics(self) -> dict[str, float]:
        """Flat numbers for MLflow: totals, the stratum mix and pairs per category."""
        metrics: dict[str, float] = {
            "pairs": self.pairs,
            "heldout_pairs": self.heldout_pairs,
            "short_requests": self.short,
            "skipped_rooms": len(self.skipped),
        }
        metrics |= {f"rooms_{split}": n for split, n in self.rooms.items()}
        for stratum in STRATA:
            metrics[f"pairs_{stratum}"] = self.strata.get(stratum, 0)
            metrics[f"share_{stratum}"] = self.strata.get(stratum, 0) / max(self.pairs, 1)
            metrics[f"heldout_pairs_{stratum}"] = self.heldout_strata.get(stratum, 0)
        metrics |= {f"pairs_category_{c}": n for c, n in self.categories.items()}
        return metrics


def query_texts(vocabulary: VocabularyConfig) -> dict[str, str]:
    """category -> the text a user would ask it by (`category_query`)."""
    return {
        category: category_query(category, vocabulary) for category in sorted(vocabulary.categories)
    }


def split_rooms(out_dir: Path) -> tuple[dict[str, list[MiningRoom]], list[Skipped]]:
    """Rooms by split (sorted by id), and the rooms without a split, each with its reason."""
    rooms = pq.read_table(out_dir / ROOMS_FILE, columns=["room_id", "room_type", "path"])
    splits = split_ids(out_dir, "room")
    by_split: dict[str, list[MiningRoom]] = {split: [] for split in SPLITS}
    missing = []
    for row in sorted(rooms.to_pylist(), key=lambda r: r["room_id"]):
        split = splits.get(row["room_id"])
        if split is None:
            missing.append(Skipped(row["room_id"], "not in splits.parquet"))
            continue
        by_split[split].append(MiningRoom(row["room_id"], row["room_type"], row["path"], split))
    return by_split, missing


def split_ids(out_dir: Path, kind: str) -> dict[str, str]:
    """id -> split of one kind ("room" or "product") of splits.parquet."""
    table = pq.read_table(out_dir / SPLITS_FILE, columns=["kind", "id", "split"])
    table = table.filter(pc.equal(table["kind"], kind))
    return dict(zip(table["id"].to_pylist(), table["split"].to_pylist(), strict=True))


def plan_shards(out_dir: Path, cfg: MiningConfig) -> MiningPlan:
    """Train rooms (and test rooms when the held-out file is wanted) in shards of
    `rooms_per_shard`, plus the rooms that cannot be mined."""
    rooms, skipped = split_rooms(out_dir)
    splits = SPLITS if cfg.write_heldout else SPLITS[:1]
    size = cfg.rooms_per_shard
    shards = [
        RoomShard(split, number, tuple(part))
        for split in splits
        for number, part in enumerate(batched(rooms[split], size))
    ]
    return MiningPlan(shards, skipped)


def candidate_pools(
    index: VectorIndex, queries: dict[str, str], split_keys: set[str]
) -> list[CandidatePool]:
    """One pool per vocabulary category: its products in the index whose key is in
    `split_keys`, one listing per item (an item on several marketplaces has the same images:
    a second pair of it would only repeat the first)."""
    columns = ["key", "item_id", "category"]
    table = index.table.search().select(columns).limit(max(index.count(), 1)).to_arrow()
    listings = table.group_by("item_id").aggregate([("key", "min")])["key_min"]
    keep = pc.is_in(listings, value_set=pa.array(sorted(split_keys), pa.string()))
    keep_array = listings.filter(keep)
    pools = []
    for category, query in queries.items():
        in_category = table.filter(pc.equal(table["category"], category))
        wanted = pc.is_in(in_category["key"], value_set=keep_array)
        keys = sorted(in_category.filter(wanted)["key"].to_pylist())
        dropped = sorted(in_category.filter(pc.invert(wanted))["key"].to_pylist())
        pools.append(
            CandidatePool(category, query, tuple(keys), pool_filter(category, keys, dropped))
        )
    return pools


def pool_filter(category: str, keys: Sequence[str], dropped: Sequence[str]) -> str:
    """A prefilter for the category's `keys`: the shorter of `IN keys` and `NOT IN dropped`."""
    where = sql_in("category", [category])
    if not dropped:
        return where
    if len(keys) <= len(dropped):
        return f"{where} AND {sql_in('key', keys)}"
    return f"{where} AND NOT ({sql_in('key', dropped)})"


def request_rng(seed: int, room_id: str, category: str) -> np.random.Generator:
    """A generator per (room, category): the random stratum does not depend on sharding."""
    digest = hashlib.blake2b(f"{seed}|{room_id}|{category}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


class RoomMiner:
    """Scores and picks the pairs of one room photo against every candidate pool."""

    def __init__(self, index: VectorIndex, pools: list[CandidatePool], cfg: MiningConfig) -> None:
        self.index = index
        self.pools = pools
        self.cfg = cfg

    def scored(self, vector: np.ndarray, pool: CandidatePool) -> dict[str, float]:
        """key -> similarity of the nearest and the farthest `search_depth` products."""
        depth = self.cfg.search_depth
        found = [self.index.nearest(vector, depth, where=pool.where)]
        if len(pool.keys) > depth:  # else the nearest search already returned every product
            found.append(self.index.nearest(-vector, depth, where=pool.where))
        return self.similarities(found, vector)

    def similarities(self, tables: list[pa.Table], vector: np.ndarray) -> dict[str, float]:
        scores: dict[str, float] = {}
        for rows in tables:
            sims = vector_matrix(rows) @ vector
            scores |= dict(zip(rows["key"].to_pylist(), sims.tolist(), strict=True))
        return scores

    def pick(self, room: MiningRoom, vector: np.ndarray, pool: CandidatePool) -> list[dict]:
        """The lookalike, far and random pairs of one (room, category), ranked."""
        scores = self.scored(vector, pool)
        order = sorted(scores, key=lambda key: (-scores[key], key))
        lookalike = order[: self.cfg.lookalike]
        far = [key for key in reversed(order) if key not in lookalike][: self.cfg.far]
        rest = sorted(set(pool.keys) - set(lookalike) - set(far))
        count = min(self.cfg.random, len(rest))
        rng = request_rng(self.cfg.seed, room.room_id, pool.category)
        random = sorted(rng.choice(rest, size=count, replace=False).tolist()) if count else []
        unscored = [key for key in random if key not in scores]
        if unscored:
            scores |= self.similarities([self.index.rows(unscored)], vector)
            order = sorted(scores, key=lambda key: (-scores[key], key))
        rank = {key: i for i, key in enumerate(order, start=1)}
        strata = {"lookalike": lookalike, "far": far, "random": random}
        return [
            pair_row(room, pool, key, stratum, scores[key], rank[key])
            for stratum in STRATA
            for key in strata[stratum]
        ]


def pair_row(
    room: MiningRoom, pool: CandidatePool, key: str, stratum: str, similarity: float, rank: int
) -> dict:
    return {
        "pair_id": f"{room.room_id}|{key}",
        "room_id": room.room_id,
        "room_type": room.room_type,
        "key": key,
        "category": pool.category,
        "query": pool.query,
        "stratum": stratum,
        "similarity": similarity,
        "rank": rank,
        "split": room.split,
    }


def embed_rooms(
    rooms: Sequence[MiningRoom], embedder: Embedder
) -> tuple[list[tuple[MiningRoom, np.ndarray]], list[Skipped]]:
    """(room, unit vector) of every loadable photo; the others with their reason."""
    bad: dict[int, Exception] = {}
    vectors = list(
        embedder.iter_images(
            [room.path for room in rooms],
            progress=False,
            on_bad=bad.__setitem__,
        )
    )
    ok = [room for i, room in enumerate(rooms) if i not in bad]
    stacked = np.concatenate(vectors) if vectors else np.zeros((0, embedder.dim), np.float32)
    skipped = [Skipped.because(rooms[i].room_id, error) for i, error in sorted(bad.items())]
    return list(zip(ok, stacked, strict=True)), skipped


def mine_shard(
    shard: RoomShard,
    out_dir: Path,
    snapshot: IndexSnapshot,
    index_cfg: IndexConfig,
    embedder: Embedder,
    cfg: MiningConfig,
) -> ShardResult:
    """Every pair of the shard's rooms against the same-split products of every category."""
    stage = VisualStage.open(snapshot, index_cfg, embedder, name=SIGLIP, text_weight=0.0)
    products = split_ids(out_dir, "product")
    keep = {key for key, split in products.items() if split == shard.split}
    pools = candidate_pools(stage.index, query_texts(index_cfg.vocabulary), keep)
    miner = RoomMiner(stage.index, pools, cfg)
    embedded, skipped = embed_rooms(shard.rooms, embedder)
    rows: list[dict] = []
    short = 0
    wanted = cfg.lookalike + cfg.far + cfg.random
    desc = f"mine {shard.split} shard {shard.number}"
    for room, vector in tqdm(embedded, desc=desc):
        for pool in pools:
            if not pool.keys:
                continue
            picked = miner.pick(room, vector, pool)
            short += len(picked) < wanted
            rows.extend(picked)
    return ShardResult(shard.split, rows, len(embedded), short, skipped)


def pairs_table(rows: list[dict]) -> pa.Table:
    """Rows in PAIRS_SCHEMA, sorted by room, category and rank; pair ids checked unique."""
    table = pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA)
    if pc.count_distinct(table["pair_id"]).as_py() != table.num_rows:
        raise ValueError("mining produced a duplicate pair_id: a room was mined twice")
    return table.sort_by(SORT_KEYS)


def combine(
    results: list[ShardResult],
    plan: MiningPlan,
    out_dir: Path,
    cfg: MiningConfig,
    vocabulary: VocabularyConfig,
) -> MiningReport:
    """Write pairs.parquet (and heldout_pairs.parquet) atomically; count what went in."""
    tables = {
        split: pairs_table(
            [row for result in results if result.split == split for row in result.rows]
        )
        for split in SPLITS
    }
    pairs_file = atomic_write_parquet(out_dir / PAIRS_FILE, tables["train"])
    heldout_file = None
    if cfg.write_heldout:
        heldout_file = str(atomic_write_parquet(out_dir / HELDOUT_PAIRS_FILE, tables["test"]))
    train, test = tables["train"], tables["test"]
    categories = Counter(train["category"].to_pylist())
    return MiningReport(
        pairs_file=str(pairs_file),
        heldout_file=heldout_file,
        pairs=train.num_rows,
        heldout_pairs=test.num_rows if cfg.write_heldout else 0,
        rooms={split: sum(r.rooms for r in results if r.split == split) for split in SPLITS},
        strata=dict(sorted(Counter(train["stratum"].to_pylist()).items())),
        categories={
            category: categories.get(category, 0) for category in sorted(vocabulary.categories)
        },
        heldout_strata=dict(sorted(Counter(test["stratum"].to_pylist()).items())),
        short=sum(result.short for result in results),
        skipped=plan.skipped + [entry for result in results for entry in result.skipped],
    )
