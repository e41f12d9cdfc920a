"""docs/search-and-api.md lists the routes, statuses and fields the OpenAPI schema declares."""

from __future__ import annotations

from mars_core.app.serve.api_doc import PAGE, current_schema, generated_part, render


def test_the_api_reference_is_the_schema():
    page = PAGE.read_text(encoding="utf-8")
    assert generated_part(page) == render(current_schema()), (
        "docs/search-and-api.md and the service's OpenAPI schema differ: run "
        "`python -m mars_core.app.serve.api_doc`"
    )
