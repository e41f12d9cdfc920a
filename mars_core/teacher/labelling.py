"""Labelling a pairs file, resumably: small label shards as they are made, then one table.

Layout beside the pairs file (`pairs.parquet` -> `labels.parquet`):

    labels.shards/<teacher name>-<fingerprint>/part-<pair shard>-<random>.parquet
    labels.parquet

Each batch of `teacher.batch_size` labels is one shard file, written atomically (a temporary
file renamed into place), so a run killed with SIGKILL loses at most the batch in flight and
leaves no torn file. A re-run reads which pair ids the shards hold and labels only the rest.
The fingerprint covers everything that changes a label (teacher kind, model, knowledge,
scores, prompt version) but not how fast it is made (batch size, concurrency, timeouts), so a
changed teacher starts fresh and a re-tuned one resumes.

The pairs, sorted by `pair_id`, are cut into pair shards of `teacher.shard_pairs`: the unit
a flow maps over, so several workers (or several server replicas) label in parallel without
ever labelling the same pair twice.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from mars_core.catalogue.schema import CATALOGUE_FILE, ROOMS_FILE
from mars_core.config import TeacherConfig
from mars_core.infra.batching import batched
from mars_core.infra.errors import UserInputError
from mars_core.infra.io import atomic_write_parquet
from mars_core.mining.schema import HELDOUT_PAIRS_FILE, PAIRS_FILE, PAIRS_SCHEMA
from mars_core.prompt import PROMPT_VERSION
from mars_core.teacher.base import Label, LabelRequest, Teacher
from mars_core.teacher.schema import HELDOUT_LABELS_FILE, LABELS_FILE, LABELS_SCHEMA, STATUSES

SHARD_GLOB = "part-*.parquet"
# Knobs that change how fast labels are made, not what they say: left out of the fingerprint.
OPERATIONAL_KNOBS = frozenset(
    {"batch_size", "shard_pairs", "concurrency", "timeout", "retries", "backoff", "device",
     "api_key_env", "rationale_samples", "fit_threshold"}
)  # fmt: skip


@dataclass
class ShardReport:
    """What one pair shard's labelling did."""

    shard: int
    pairs: int  # pairs in this shard
    already: int  # labelled by an earlier run
    labelled: int  # labelled now
    counts: dict[str, int]  # labelled now, per status


@dataclass
class ConsolidateReport:
    """The consolidated labels table and what went into it."""

    path: str
    rows: int
    counts: dict[str, int]  # per status
    missing: int  # pairs without a label (a shard that did not finish)
    duplicates: int  # extra labels of one pair (kept: the first)
    stale: int  # labels of pairs no longer in the pairs file (left out)


def labels_path(pairs: Path) -> Path:
    """`labels.parquet` for `pairs.parquet`, `heldout_labels.parquet` for the held-out pairs,
    `<stem>_labels.parquet` for any other pairs file; always beside it."""
    names = {PAIRS_FILE: LABELS_FILE, HELDOUT_PAIRS_FILE: HELDOUT_LABELS_FILE}
    return pairs.with_name(names.get(pairs.name, f"{pairs.stem}_labels.parquet"))


def fingerprint(cfg: TeacherConfig) -> str:
    """Short hash of what decides a label: the teacher's knobs but the operational ones."""
    knobs = {k: v for k, v in asdict(cfg).items() if k not in OPERATIONAL_KNOBS}
    text = json.dumps({"teacher": knobs, "prompt": PROMPT_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def shard_dir(pairs: Path, cfg: TeacherConfig) -> Path:
    return labels_path(pairs).with_suffix(".shards") / f"{cfg.name}-{fingerprint(cfg)}"


def read_pairs(pairs: Path) -> pa.Table:
    """The pairs table sorted by pair id; a missing file names the flow that makes it."""
    if not pairs.is_file():
        raise UserInputError(
            f"pairs file {str(pairs)!r} not found; run `python -m flows.mining` first "
            "(or pass the pairs file to label)"
        )
    table = pq.read_table(pairs)
    missing = [name for name in PAIRS_SCHEMA.names if name not in table.column_names]
    if missing:
        raise UserInputError(f"{pairs} is not a pairs table: it lacks columns {missing}")
    return table.select(PAIRS_SCHEMA.names).sort_by("pair_id")


def plan_shards(pairs: Path, cfg: TeacherConfig) -> list[int]:
    """The pair shards to map over; also clears temporary files a killed run left behind.

    Call once per run, before any shard is labelled (a live writer's temporary file would go).
    """
    folder = shard_dir(pairs, cfg)
    if folder.is_dir():
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
    rows = read_pairs(pairs).num_rows
    return list(range(-(-rows // cfg.shard_pairs)))


def labelled_ids(folder: Path) -> set[str]:
    """Pair ids some shard already holds."""
    ids: set[str] = set()
    for path in sorted(folder.glob(SHARD_GLOB)):
        ids.update(pq.read_table(path, columns=["pair_id"]).column("pair_id").to_pylist())
    return ids


def label_shard(
    pairs: Path,
    shard: int,
    catalogue_dir: Path,
    cfg: TeacherConfig,
    cache_dir: Path,
    max_image_pixels: int,
) -> ShardReport:
    """Label the not-yet-labelled pairs of pair shard `shard`, one shard file per batch;
    a room or product image over `max_image_pixels` (data.max_image_pixels) labels failed."""
    table = read_pairs(pairs).slice(shard * cfg.shard_pairs, cfg.shard_pairs)
    folder = shard_dir(pairs, cfg)
    done = labelled_ids(folder)
    todo = [row for row in table.to_pylist() if row["pair_id"] not in done]
    counts = dict.fromkeys(STATUSES, 0)
    report = ShardReport(shard, table.num_rows, table.num_rows - len(todo), len(todo), counts)
    if not todo:
        return report
    requests = _requests(todo, catalogue_dir)
    teacher = teacher_for(cfg, cache_dir, max_image_pixels)
    progress = tqdm(total=len(todo), desc=f"label shard {shard}", unit="pair", leave=False)
    for pair_rows, batch in zip(
        batched(todo, cfg.batch_size), batched(requests, cfg.batch_size), strict=True
    ):
        labels = [r if isinstance(r, Label) else None for r in batch]
        asked = [r for r in batch if isinstance(r, LabelRequest)]
        answers = iter(teacher.label(asked))
        labels = [label or next(answers) for label in labels]
        rows = [
            _label_row(pair, label, cfg.name) for pair, label in zip(pair_rows, labels, strict=True)
        ]
        name = f"part-{shard:05d}-{uuid.uuid4().hex[:12]}.parquet"
        atomic_write_parquet(folder / name, pa.Table.from_pylist(rows, schema=LABELS_SCHEMA))
        for row in rows:
            counts[row["status"]] += 1
        progress.update(len(rows))
    progress.close()
    return report


def consolidate(pairs: Path, cfg: TeacherConfig) -> ConsolidateReport:
    """All shards as one table beside the pairs file, one row per labelled pair, by pair id."""
    pair_ids = set(read_pairs(pairs).column("pair_id").to_pylist())
    folder = shard_dir(pairs, cfg)
    shards = [pq.read_table(p, schema=LABELS_SCHEMA) for p in sorted(folder.glob(SHARD_GLOB))]
    table = pa.concat_tables(shards) if shards else LABELS_SCHEMA.empty_table()
    current = pc.is_in(table.column("pair_id"), value_set=pa.array(sorted(pair_ids), pa.string()))
    stale = table.num_rows - pc.sum(current).as_py() if table.num_rows else 0
    table = table.filter(current)
    ids = table.column("pair_id").to_pylist()
    first = {}
    for position, pair_id in enumerate(ids):
        first.setdefault(pair_id, position)
    duplicates = len(ids) - len(first)
    table = table.take(sorted(first.values())).sort_by("pair_id")
    out = labels_path(pairs)
    atomic_write_parquet(out, table)
    statuses = table.column("status").to_pylist()
    counts = {status: statuses.count(status) for status in STATUSES}
    missing = len(pair_ids) - table.num_rows
    return ConsolidateReport(str(out), table.num_rows, counts, missing, duplicates, stale)


_TEACHERS: dict[str, Teacher] = {}
_TEACHERS_LOCK = threading.Lock()


def teacher_for(cfg: TeacherConfig, cache_dir: Path, max_image_pixels: int) -> Teacher:
    """One teacher per configuration and process, shared by every shard labelled in it (a 7B
    model is loaded once, not once per shard)."""
    key = json.dumps([asdict(cfg), str(cache_dir), max_image_pixels], sort_keys=True, default=str)
    with _TEACHERS_LOCK:
        if key not in _TEACHERS:
            _TEACHERS[key] = build_teacher(cfg, cache_dir, max_image_pixels)
        return _TEACHERS[key]


def build_teacher(cfg: TeacherConfig, cache_dir: Path, max_image_pixels: int) -> Teacher:
    """The backend `teacher.kind` names."""
    if cfg.kind == "metadata":
        from mars_core.teacher.metadata import MetadataTeacher

        return MetadataTeacher(cfg, max_image_pixels)
    if cfg.kind == "vlm":
        from mars_core.teacher.vlm import VLMTeacher

        return VLMTeacher(cfg, cache_dir, max_image_pixels)
    from mars_core.teacher.remote import OpenAITeacher

    return OpenAITeacher(cfg, max_image_pixels)


def _requests(pairs: list[dict], catalogue_dir: Path) -> list[LabelRequest | Label]:
    """A request per pair, or a failed label when its room or product is not in the tables."""
    rooms = _rows_by(catalogue_dir / ROOMS_FILE, "room_id", {p["room_id"] for p in pairs})
    products = _rows_by(catalogue_dir / CATALOGUE_FILE, "key", {p["key"] for p in pairs})
    requests: list[LabelRequest | Label] = []
    for pair in pairs:
        room, product = rooms.get(pair["room_id"]), products.get(pair["key"])
        if room is None or product is None:
            what = f"room {pair['room_id']!r}" if room is None else f"product {pair['key']!r}"
            raw = f"<no answer: {what} is not in {catalogue_dir}>"
            requests.append(Label(None, None, raw, "failed", 0))
            continue
        requests.append(LabelRequest(pair=pair, room_path=room["path"], product=product))
    return requests


def _rows_by(path: Path, column: str, wanted: set[str]) -> dict[str, dict]:
    if not path.is_file():
        raise UserInputError(f"{path} not found; run `python -m flows.ingest` first")
    table = pq.read_table(path)
    table = table.filter(pc.is_in(table.column(column), value_set=pa.array(sorted(wanted))))
    return {row[column]: row for row in table.to_pylist()}


def _label_row(pair: dict, label: Label, teacher: str) -> dict:
    return {
        **pair,
        "score": label.score,
        "rationale": label.rationale,
        "raw": label.raw,
        "status": label.status,
        "attempts": label.attempts,
        "teacher": teacher,
        "prompt_version": PROMPT_VERSION,
    }
