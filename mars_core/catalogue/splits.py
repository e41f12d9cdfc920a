"""Train/test splits grouped so no room photo and no product image is on both sides.

Products that share any image (ABO lists one item on several marketplaces with the same
photos) form one group; rooms with identical bytes form one group. Within each stratum
(category for products, room type for rooms) groups are ordered by a seeded hash and the
first `test_fraction` of them go to test (at least one, if the stratum has two groups or
more), so every category and room type is represented on both sides and the assignment does
not depend on row order.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from mars_core.catalogue.schema import (
    CATALOGUE_FILE,
    CATALOGUE_SCHEMA,
    ROOMS_FILE,
    ROOMS_SCHEMA,
    SPLITS_FILE,
    SPLITS_SCHEMA,
)
from mars_core.catalogue.tables import read_table, write_table
from mars_core.infra.errors import UserInputError


class UnionFind:
    """Groups of ids joined by shared members (here: listings joined by shared images)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: str, b: str) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)


def product_groups(catalogue: pa.Table) -> dict[str, str]:
    """key -> group name; listings sharing a main or other image share a group."""
    groups = UnionFind()
    columns = ("key", "image_id", "other_image_ids")
    for key, image_id, others in zip(*(catalogue[c].to_pylist() for c in columns), strict=True):
        for image in [image_id, *(others or [])]:
            groups.union(f"image:{image}", f"key:{key}")
    return {key: groups.find(f"key:{key}") for key in catalogue["key"].to_pylist()}


def room_groups(rooms: pa.Table) -> dict[str, str]:
    """room_id -> group name; identical photos (same bytes) share a group."""
    ids, hashes = rooms["room_id"].to_pylist(), rooms["content_hash"].to_pylist()
    return {room_id: f"photo:{digest}" for room_id, digest in zip(ids, hashes, strict=True)}


def _order(group: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def assign(
    members: Iterable[tuple[str, str, str]], test_fraction: float, seed: int
) -> dict[str, str]:
    """(id, group, stratum) triples -> group -> "train" | "test", stratified, seeded."""
    strata: dict[str, set[str]] = defaultdict(set)
    group_stratum: dict[str, str] = {}
    for _, group, stratum in sorted(members):
        # A group spanning strata is placed by its first stratum (in sorted id order).
        group_stratum.setdefault(group, stratum)
        strata[group_stratum[group]].add(group)
    split: dict[str, str] = {}
    for groups in strata.values():
        ordered = sorted(groups, key=lambda group: _order(group, seed))
        n_test = round(len(ordered) * test_fraction)
        n_test = min(max(n_test, 1), len(ordered) - 1) if len(ordered) >= 2 else 0
        split |= {group: "test" if i < n_test else "train" for i, group in enumerate(ordered)}
    return split


def make_splits(catalogue: pa.Table, rooms: pa.Table, test_fraction: float, seed: int) -> pa.Table:
    """The splits table: one row per product and per room, sorted by kind and id."""
    rows = []
    for kind, groups, strata in (
        ("product", product_groups(catalogue), catalogue["category"].to_pylist()),
        ("room", room_groups(rooms), rooms["room_type"].to_pylist()),
    ):
        members = [
            (member, group, stratum)
            for (member, group), stratum in zip(groups.items(), strata, strict=True)
        ]
        split = assign(members, test_fraction, seed)
        rows += [
            {"kind": kind, "id": m, "group": g, "stratum": s, "split": split[g]}
            for m, g, s in members
        ]
    rows.sort(key=lambda row: (row["kind"], row["id"]))
    return pa.Table.from_pylist(rows, schema=SPLITS_SCHEMA)


@dataclass
class SplitsReport:
    """How many products and rooms each side got, as `"<kind>.<side>": count`."""

    counts: dict[str, int]

    def metrics(self) -> dict[str, float]:
        return {f"split.{name}": float(n) for name, n in self.counts.items()}


def write_splits(out_dir: Path, test_fraction: float, seed: int) -> SplitsReport:
    """Split the ingested catalogue and rooms in `out_dir`; counts per kind and side."""
    out_dir = Path(out_dir)
    catalogue = read_table(out_dir / CATALOGUE_FILE, CATALOGUE_SCHEMA)
    rooms = read_table(out_dir / ROOMS_FILE, ROOMS_SCHEMA)
    splits = make_splits(catalogue, rooms, test_fraction, seed)
    write_table(splits, out_dir / SPLITS_FILE)
    kinds = zip(splits["kind"].to_pylist(), splits["split"].to_pylist(), strict=True)
    return SplitsReport({f"{kind}.{side}": n for (kind, side), n in sorted(Counter(kinds).items())})


def _validation_rooms(room_ids: list[str], fraction: float, seed: int) -> set[str]:
    """A seeded, order-independent choice of about `fraction` of the rooms (at least one, and
    at least one left for training)."""
    if len(room_ids) < 2:
        raise UserInputError(
            f"labels cover {len(room_ids)} room(s); a validation split by room needs at least 2"
        )
    ordered = sorted(room_ids, key=lambda r: hashlib.sha256(f"{seed}:{r}".encode()).hexdigest())
    n_val = min(max(round(len(ordered) * fraction), 1), len(ordered) - 1)
    return set(ordered[:n_val])


@dataclass(frozen=True)
class ValidationSplit:
    """What SFT holds out of its training side: rooms and products it never trains on.

    SFT validates on them, and the evaluation chooses the student's operating point on the
    held-out rooms searched over the held-out products only: a student is surer of products
    it trained on (with other rooms), so a fit bar chosen on them is too high for unseen ones.
    """

    rooms: frozenset[str]
    products: frozenset[str]

    def holds(self, room_id: str, key: str) -> bool:
        """Whether a (room, product) pair is on the validation side (either is held out)."""
        return room_id in self.rooms or key in self.products


def validation_split(
    pairs: Iterable[tuple[str, str]],
    catalogue: pa.Table,
    room_fraction: float,
    product_fraction: float,
    seed: int,
) -> ValidationSplit:
    """The validation side of labelled (room_id, key) `pairs`: about `room_fraction` of their
    rooms, and about `product_fraction` of their products' image groups in each category (at
    least one group where a category has two), seeded and order-independent."""
    pairs = list(pairs)
    groups = product_groups(catalogue)
    columns = (catalogue["key"].to_pylist(), catalogue["category"].to_pylist())
    categories = dict(zip(*columns, strict=True))
    members = [(key, groups[key], categories[key]) for key in sorted({k for _, k in pairs})]
    side = assign(members, product_fraction, seed)
    products = frozenset(key for key, group, _ in members if side[group] == "test")
    if not products:
        raise UserInputError(
            f"labels cover no category with two products of different images ({len(members)} "
            "product(s)); a validation split by product needs one"
        )
    rooms = sorted({room for room, _ in pairs})
    return ValidationSplit(frozenset(_validation_rooms(rooms, room_fraction, seed)), products)
