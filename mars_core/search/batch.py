"""Batch search I/O: a requests file in, a results table out."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from mars_core.errors import UserInputError
from mars_core.search.funnel import SearchResult

REQUEST_FORMATS = (".csv", ".jsonl")

RESULTS_SCHEMA = pa.schema(
    [
        pa.field("request", pa.int32(), nullable=False),  # request number, from 1 as in the file
        pa.field("room_id", pa.string(), nullable=False),
        pa.field("query", pa.string(), nullable=False),
        pa.field("rank", pa.int32(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("category", pa.string()),
        pa.field("image_path", pa.string()),
        pa.field("bm25", pa.float32()),
        pa.field("siglip", pa.float32()),
        pa.field("agent", pa.float32()),
        pa.field("rationale", pa.string()),
        pa.field("category_locked", pa.bool_()),
        pa.field("nothing_fits", pa.bool_(), nullable=False),
        pa.field("seconds_bm25", pa.float32()),
        pa.field("seconds_siglip", pa.float32()),
        pa.field("seconds_agent", pa.float32()),
        pa.field("ranked_by", pa.string()),  # student + adapter version behind the agent's order
    ]
)


@dataclass
class RequestSpec:
    """One line of a requests file; `room` is resolved against the file's folder."""

    line: int  # request number, from 1 as in the file
    room: Path
    query: str
    room_id: str


@dataclass
class RequestsFile:
    """The usable requests of a file, and the lines that are not, with their reasons."""

    specs: list[RequestSpec]
    bad_lines: list[tuple[int, str]]  # (request number from 1, reason)


@dataclass
class FailedRequest:
    """A request of a batch that could not run, shown on the page with its reason."""

    room: str
    query: str
    reason: str
    request: int = 0  # request number, from 1 as in the file


class RequestsFileError(UserInputError):
    """The requests file itself is unusable: wrong format, missing, or not text."""


def read_requests(path: Path) -> RequestsFile:
    """Read `room,query[,room_id]` rows from a .csv (with header) or .jsonl file.

    A bad line (not a JSON object, a field missing) is reported with its reason and the
    other lines still run; only a file that cannot be read at all raises.
    """
    if path.suffix not in REQUEST_FORMATS:
        raise RequestsFileError(
            f"{path}: requests must be a {' or '.join(REQUEST_FORMATS)} file with fields "
            "room, query (and optionally room_id)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise RequestsFileError(f"{path}: no such requests file") from e
    except UnicodeDecodeError as e:
        raise RequestsFileError(f"{path}: not UTF-8 text ({e.reason})") from e
    rows = list(csv.DictReader(text.splitlines())) if path.suffix == ".csv" else _jsonl(text)
    parsed = RequestsFile(specs=[], bad_lines=[])
    for line, row in enumerate(rows, start=1):
        problem = _row_problem(row)
        if problem:
            parsed.bad_lines.append((line, problem))
            continue
        room = Path(row["room"])
        room = room if room.is_absolute() else path.parent / room
        parsed.specs.append(
            RequestSpec(
                line=line,
                room=room,
                query=str(row["query"]),
                room_id=str(row.get("room_id") or room.stem),
            )
        )
    return parsed


def _jsonl(text: str) -> list[dict | str]:
    """Rows of a JSONL file; a line that is not a JSON object becomes its error message."""
    rows: list[dict | str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            rows.append(f"not JSON ({e.msg})")
            continue
        rows.append(row if isinstance(row, dict) else "not a JSON object with room and query")
    return rows


def _row_problem(row: dict | str) -> str | None:
    if isinstance(row, str):
        return row
    missing = [f for f in ("room", "query") if not str(row.get(f) or "").strip()]
    return f"lacks {', '.join(missing)}" if missing else None


def results_table(results: list[tuple[int, SearchResult]]) -> pa.Table:
    """One row per (request, ranked product), with every stage's score and time."""
    rows = []
    for line, result in results:
        for rank, candidate in enumerate(result.results, start=1):
            product = candidate.product
            rows.append(
                {
                    "request": line,
                    "room_id": result.request.room_id,
                    "query": result.request.query,
                    "rank": rank,
                    "key": candidate.key,
                    "name": product.get("name"),
                    "category": product.get("category"),
                    "image_path": product.get("image_path"),
                    **{s: candidate.scores.get(s) for s in ("bm25", "siglip", "agent")},
                    "rationale": candidate.rationale,
                    "category_locked": result.locked,
                    "nothing_fits": result.nothing_fits,
                    **{f"seconds_{s}": result.timings.get(s) for s in ("bm25", "siglip", "agent")},
                    "ranked_by": result.ranked_by,
                }
            )
    return pa.Table.from_pylist(rows, schema=RESULTS_SCHEMA)
