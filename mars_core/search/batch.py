"""Batch search I/O: a requests file in, a results table out."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from mars_core.infra.errors import UserInputError
from mars_core.search.funnel import SearchResult
from mars_core.search.types import Candidate

REQUEST_FORMATS = (".csv", ".jsonl")
TEXT_FIELDS = ("room", "query", "room_id")  # every field a request row may have; all text

# The results table's columns around the stages' own: each stage adds its score (`<stage>`) and
# its time (`seconds_<stage>`), in the order the stage registry runs them.
REQUEST_FIELDS = [
    pa.field("request", pa.int32(), nullable=False),  # request number, from 1 as in the file
    pa.field("room_id", pa.string(), nullable=False),
    pa.field("query", pa.string(), nullable=False),
    pa.field("rank", pa.int32(), nullable=False),
    pa.field("key", pa.string(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("category", pa.string()),
    pa.field("image_path", pa.string()),
]
OUTCOME_FIELDS = [
    pa.field("rationale", pa.string()),
    pa.field("category_locked", pa.bool_()),
    pa.field("nothing_fits", pa.bool_(), nullable=False),
]
RANKING_FIELDS = [
    pa.field("ranked_by", pa.string()),  # student + adapter version behind the agent's order
    # a category offered instead when nothing fits (its best product; rank among them)
    pa.field("alternative", pa.bool_(), nullable=False),
]


def results_schema(stages: Sequence[str]) -> pa.Schema:
    """The results table of a funnel whose registered stages are `stages`, in order."""
    return pa.schema(
        [
            *REQUEST_FIELDS,
            *(pa.field(stage, pa.float32()) for stage in stages),
            *OUTCOME_FIELDS,
            *(pa.field(f"seconds_{stage}", pa.float32()) for stage in stages),
            *RANKING_FIELDS,
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


def read_requests(path: Path, roots: Sequence[str | Path] = ()) -> RequestsFile:
    """Read `room,query[,room_id]` rows from a .csv (with header) or .jsonl file; a row with
    no query (or an empty one) asks what fits the room.

    Room paths resolve inside the file's folder or one of `roots` (`funnel.request_roots`);
    a path that leads elsewhere (`../`, an absolute path, a symlink out) is refused. A bad
    line (not a JSON object, a field missing or not text, a room outside) is reported with
    its reason and the other lines still run; only a file that cannot be read at all raises.
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
    allowed = allowed_folders(path, roots)
    for line, row in enumerate(rows, start=1):
        problem = _row_problem(row)
        room = None if problem else room_inside(row["room"], path.parent, allowed)
        if room is None:
            parsed.bad_lines.append((line, problem or outside_reason(row["room"])))
            continue
        parsed.specs.append(
            RequestSpec(
                line=line,
                room=room,
                query=str(row.get("query") or ""),
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
    wrong = [
        f"{f} is {type(row[f]).__name__}, not text"
        for f in TEXT_FIELDS
        if row.get(f) is not None and not isinstance(row[f], str)
    ]
    wrong += [
        f"{f} holds a NUL character"
        for f in TEXT_FIELDS
        if isinstance(row.get(f), str) and "\x00" in row[f]
    ]
    if wrong:
        return "; ".join(wrong)
    return None if (row.get("room") or "").strip() else "lacks room"


def allowed_folders(requests: Path, roots: Sequence[str | Path]) -> list[Path]:
    """The requests file's folder and each configured root, links resolved (empty skipped)."""
    folders = [requests.parent, *(Path(root) for root in roots if str(root).strip())]
    return [Path(os.path.realpath(folder)) for folder in folders]


def room_inside(room: str, folder: Path, allowed: list[Path]) -> Path | None:
    """`room` (relative to `folder`, or absolute) when it resolves inside an allowed folder,
    else None. Resolved with links followed, so a symlink cannot lead out either."""
    resolved = Path(os.path.realpath(folder / room))
    return resolved if any(resolved.is_relative_to(root) for root in allowed) else None


def outside_reason(room: str) -> str:
    """Why a room path was refused, the same words whether or not a file is there."""
    return (
        f"room {room!r} is outside the requests file's folder: give a path inside it "
        "(or add a folder to funnel.request_roots)"
    )


def results_table(results: list[tuple[int, SearchResult]], stages: Sequence[str]) -> pa.Table:
    """One row per (request, ranked product), with the score and time of each of `stages` (the
    registered ones: a stage switched off leaves its columns empty); then, for a request where
    nothing fits, one row per category offered instead (`alternative`)."""
    rows = []
    for line, result in results:
        offered = [alternative.candidate for alternative in result.alternatives]
        for alternative, listed in ((False, result.results), (True, offered)):
            rows += [
                _result_row(line, result, rank, candidate, stages, alternative=alternative)
                for rank, candidate in enumerate(listed, start=1)
            ]
    return pa.Table.from_pylist(rows, schema=results_schema(stages))


def _result_row(
    line: int,
    result: SearchResult,
    rank: int,
    candidate: Candidate,
    stages: Sequence[str],
    *,
    alternative: bool,
) -> dict:
    product = candidate.product
    return {
        "request": line,
        "room_id": result.request.room_id,
        "query": result.request.query,
        "rank": rank,
        "key": candidate.key,
        "name": product.get("name"),
        "category": product.get("category"),
        "image_path": product.get("image_path"),
        **{stage: candidate.scores.get(stage) for stage in stages},
        "rationale": candidate.rationale,
        "category_locked": result.locked,
        "nothing_fits": result.nothing_fits,
        **{f"seconds_{stage}": result.timings.get(stage) for stage in stages},
        "ranked_by": result.ranked_by,
        "alternative": alternative,
    }
