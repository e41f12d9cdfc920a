"""A self-contained HTML page of search results that a person opens in a browser.

Images are embedded as small data URIs, so the page still shows everything when it is
moved, mailed or attached to an MLflow run.
"""

from __future__ import annotations

import base64
import io
import shlex
from html import escape
from pathlib import Path

from PIL import Image

from mars_core.funnel.stages import AGENT, stage_specs
from mars_core.infra.errors import UserInputError, printable
from mars_core.search.batch import FailedRequest
from mars_core.search.funnel import SearchResult
from mars_core.search.types import Candidate
from mars_core.vision.images import load_image

THUMBNAIL_PX = 224


def scores_note() -> str:
    """What the page says about its score columns: each registered stage's score."""
    scores = "; ".join(f"{spec.name} = {spec.score}" for spec in stage_specs() if spec.score)
    return (
        "Each list is ordered by the last stage that ran (named under each room). "
        f"Scores: {scores}."
    )


STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1100px}
h1{font-size:1.5rem} h2{font-size:1.2rem;margin-top:2.5rem;border-top:1px solid #ddd;
padding-top:1rem} .notice{background:#fff4d6;border:1px solid #e6c36a;padding:.6rem 1rem}
.nofit{background:#fde2e2;border:1px solid #e08a8a;padding:.6rem 1rem;font-weight:600}
.error{background:#fde2e2;padding:.4rem 1rem} .meta{color:#555;font-size:.9rem}
.room img{max-width:320px;border-radius:6px} table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #eee;padding:.5rem;text-align:left;vertical-align:top}
td img{width:112px;border-radius:4px} .score{font-variant-numeric:tabular-nums}
.instead{display:flex;gap:1rem;flex-wrap:wrap} .instead figure{margin:0;width:180px}
.instead img{width:112px;border-radius:4px} tr.group th{background:#f3f3f3}
"""


def image_data_uri(
    path_or_image: str | Path | Image.Image, max_pixels: int, size: int = THUMBNAIL_PX
) -> str:
    """A JPEG thumbnail as a data: URI; a bad or oversized file gives an empty URI, not a crash."""
    if isinstance(path_or_image, Image.Image):
        image = path_or_image.convert("RGB")
    else:
        try:
            image = load_image(path_or_image, max_pixels)
        except UserInputError:
            return ""
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _lock_line(result: SearchResult) -> str:
    if result.room_only:
        return "<b>no query</b>: the categories that fit the room, best first"
    if result.locked:
        return f"category locked to <b>{escape(str(result.lock.category))}</b>"
    return "<b>unlocked</b>: no known category in the query, all categories searched"


def _result_rows(result: SearchResult, stage_names: list[str], max_pixels: int) -> str:
    """The ranked products; for a room with no query, under a heading row per category."""
    rows, rank = [], 0
    groups = result.groups() if result.room_only else [("", result.results)]
    for category, candidates in groups:
        if category:
            span = len(stage_names) + 4
            rows.append(f'<tr class="group"><th colspan="{span}">{escape(category)}</th></tr>')
        for candidate in candidates:
            rank += 1
            rows.append(_product_row(rank, candidate, stage_names, max_pixels))
    return "\n".join(rows)


def _product_row(rank: int, candidate: Candidate, stage_names: list[str], max_pixels: int) -> str:
    product = candidate.product
    scores = "".join(f'<td class="score">{_fmt(candidate.scores.get(s))}</td>' for s in stage_names)
    return (
        f"<tr><td>{rank}</td>"
        f'<td><img src="{image_data_uri(product["image_path"], max_pixels)}" alt=""></td>'
        f"<td><b>{escape(str(product.get('name', '')))}</b><br>"
        f'<span class="meta">{escape(str(product.get("category", "")))} · '
        f"{escape(candidate.key)}</span></td>{scores}"
        f"<td>{escape(candidate.rationale or '')}</td></tr>"
    )


def _try_instead(result: SearchResult, max_pixels: int) -> str:
    """The categories that fit when nothing asked for does: a picture of each one's best
    product, the agent's score and reason, and the search that finds more of it."""
    if not result.alternatives:
        return ""
    figures = []
    for alternative in result.alternatives:
        candidate = alternative.candidate
        image = image_data_uri(candidate.product["image_path"], max_pixels)
        room, query = shlex.quote(result.request.room_id), shlex.quote(alternative.query)
        search = f"mars-search --room {room} --query {query}"
        figures.append(
            f'<figure class="alternative"><img src="{image}" alt="">'
            f"<figcaption><b>{escape(alternative.category)}</b> · {escape(_judged(candidate))}"
            f"<br>{escape(candidate.rationale or '')}<br>"
            f'<code class="search-link" title="search it">{escape(search)}</code>'
            "</figcaption></figure>"
        )
    return f'<p><b>Try instead:</b></p><div class="instead">{"".join(figures)}</div>'


def _judged(candidate: Candidate) -> str:
    """The last score a candidate got, by name: what the stage that judged it last said."""
    if not candidate.scores:
        return ""
    name, score = list(candidate.scores.items())[-1]
    return f"{name} {_fmt(score)}"


def asked_note(result: SearchResult) -> str | None:
    """How many candidates the agent was asked about beyond the query (a room with no query,
    or what fits instead when nothing does), within the request's budget."""
    details = result.details.get(AGENT if result.room_only else "alternatives")
    if not details or "budget" not in details:
        return None
    asked = (
        f"{details['scored']} candidates of {details['categories_asked']} categories asked "
        f"(budget {details['budget']})"
    )
    if result.room_only:
        return f"the agent judged the room on {asked}"
    return f"what fits instead: {asked}, {details['offered']} offered"


def _heading(result: SearchResult) -> str:
    if result.room_only:
        return f"What fits room {escape(result.request.room_id)}"
    return f"“{escape(result.request.query)}” for room {escape(result.request.room_id)}"


def _ranked_by(result: SearchResult) -> str:
    return f" · ranked by {escape(result.ranked_by)}" if result.ranked_by else ""


def render_result(result: SearchResult, *, max_pixels: int) -> str:
    """One request: the room photo, then the ranked products with scores and rationales;
    images over `max_pixels` (data.max_image_pixels) or unreadable are left blank."""
    stage_names = result.stages_run
    timings = ", ".join(f"{name} {secs * 1000:.0f} ms" for name, secs in result.timings.items())
    header = "".join(f"<th>{escape(s)}</th>" for s in stage_names)
    nofit = f'<p class="nofit">{escape(result.message)}</p>' if result.message else ""
    note = asked_note(result)
    nofit += f'<p class="meta asked">{escape(note)}</p>' if note else ""
    skipped = "".join(
        f'<p class="error">left out {escape(s.key)}: {escape(s.detail)}</p>' for s in result.skipped
    )
    room = result.request
    return f"""
<h2>{_heading(result)}</h2>
<div class="room"><img src="{image_data_uri(room.room, max_pixels)}" alt="room photo"></div>
<p class="meta">{_lock_line(result)} · stages: {escape(" → ".join(stage_names))} ·
{escape(timings)}{_ranked_by(result)}</p>
{nofit}{_try_instead(result, max_pixels)}{skipped}
<table><tr><th>#</th><th></th><th>product</th>{header}<th>rationale</th></tr>
{_result_rows(result, stage_names, max_pixels)}
</table>"""


def render_report(
    results: list[SearchResult],
    *,
    title: str = "MARS search results",
    notice: str | None = None,
    failed: list[FailedRequest] | None = None,
    max_pixels: int,
) -> str:
    """The whole page: an optional notice, every result, then the requests that failed."""
    notice_html = f'<p class="notice">{escape(notice)}</p>' if notice else ""
    failed_html = "".join(
        f'<p class="error">request {f.request} · {escape(f.room)} · “{escape(f.query)}”: '
        f"{escape(f.reason)}</p>"
        for f in failed or []
    )
    if failed_html:
        failed_html = f"<h2>Requests that could not run</h2>{failed_html}"
    body = "\n".join(render_result(r, max_pixels=max_pixels) for r in results)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{STYLE}</style></head>
<body><h1>{escape(title)}</h1>
{notice_html}
<p class="meta">{escape(scores_note())}</p>
{body}
{failed_html}
</body></html>
"""


def result_table_text(result: SearchResult) -> str:
    """The ranked results as a plain-text table for a terminal (control characters of
    catalogue and user text removed)."""
    stages = result.stages_run
    lines = [_lock_line(result).replace("<b>", "").replace("</b>", "")]
    if result.ranked_by:
        lines.append(f"ranked by {result.ranked_by}")
    if result.message:
        lines.append(result.message)
    if note := asked_note(result):
        lines.append(note)
    lines.append(f"{'#':>2}  {'product':48}  " + "  ".join(f"{s:>7}" for s in stages))
    groups = result.groups() if result.room_only else [("", result.results)]
    rank = 0
    for category, candidates in groups:
        if category:
            lines.append(f"-- {category}")
        for candidate in candidates:
            rank += 1
            lines += _text_row(rank, candidate, stages)
    if result.alternatives:
        lines.append("try instead:")
        for number, alternative in enumerate(result.alternatives, start=1):
            lines.append(f"-- {alternative.category} (search: {alternative.query!r})")
            lines += _text_row(number, alternative.candidate, stages)
    return printable("\n".join(lines))


def _text_row(rank: int, candidate: Candidate, stages: list[str]) -> list[str]:
    name = str(candidate.product.get("name", ""))[:48]
    scores = "  ".join(f"{_fmt(candidate.scores.get(s)):>7}" for s in stages)
    line = f"{rank:>2}  {name:48}  {scores}"
    return [line, f"    {candidate.rationale}"] if candidate.rationale else [line]
