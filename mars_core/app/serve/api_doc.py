"""The API's reference in docs/search-and-api.md, generated from the service's OpenAPI schema.

    python -m mars_core.app.serve.api_doc            # rewrite the generated part of the page

The part between `BEGIN` and `END` is `render(schema)`: each route with what it answers and
the error statuses it declares, what each status means, the upload's fields and every
response model's fields. tests/serve/test_api_doc.py fails when the page and the schema part
ways, so the page says what `/openapi.json` (and `/docs`) says.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

PAGE = Path(__file__).resolve().parents[3] / "docs" / "search-and-api.md"
BEGIN = (
    "<!-- api: generated from the service's OpenAPI schema by "
    "`python -m mars_core.app.serve.api_doc`; do not edit by hand -->"
)
END = "<!-- /api -->"
OK = "200"


def schema_type(schema: dict[str, Any]) -> str:
    """A JSON schema as a reader says it: `Product`, `list of string`, `string or null`."""
    if "$ref" in schema:
        return f"`{schema['$ref'].rsplit('/', 1)[1]}`"
    if "const" in schema:
        return f'`"{schema["const"]}"`'
    if "anyOf" in schema:
        return " or ".join(schema_type(option) for option in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {schema_type(schema['items'])}"
    if schema.get("type") == "object" and "additionalProperties" in schema:
        return f"map of {schema_type(schema['additionalProperties'])}"
    return str(schema.get("type", "any"))


def answer_of(response: dict[str, Any]) -> str:
    """What a success answers: its model, or its content type."""
    content = response.get("content", {})
    if "application/json" in content:
        return schema_type(content["application/json"]["schema"])
    return ", ".join(content) or "-"


def routes_table(paths: dict[str, Any]) -> list[str]:
    lines = ["| route | answers | error statuses |", "|---|---|---|"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            errors = ", ".join(status for status in sorted(responses) if status != OK)
            route = f"`{method.upper()} {path}`"
            lines.append(f"| {route} | {answer_of(responses.get(OK, {}))} | {errors} |")
    return lines


def statuses_table(paths: dict[str, Any]) -> list[str]:
    meanings: dict[str, str] = {}
    for operations in paths.values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if status != OK:
                    meanings.setdefault(status, response["description"])
    rows = [f"| {status} | {meanings[status]} |" for status in sorted(meanings)]
    return ["| status | when |", "|---:|---|", *rows]


def fields_table(model: dict[str, Any]) -> list[str]:
    required = set(model.get("required", ()))
    lines = ["| field | type | meaning |", "|---|---|---|"]
    for name, field in model["properties"].items():
        kind = schema_type(field) + ("" if name in required else ", optional")
        lines.append(f"| `{name}` | {kind} | {field.get('description', '')} |")
    return lines


def render(schema: dict[str, Any]) -> str:
    """The generated part of the page, for `schema` (`app.openapi()`)."""
    paths, models = schema["paths"], schema["components"]["schemas"]
    upload = schema["paths"]["/search"]["post"]["requestBody"]["content"]
    (media, body), *_ = upload.items()
    form = models[body["schema"]["$ref"].rsplit("/", 1)[1]]
    parts = [
        BEGIN,
        "",
        *routes_table(paths),
        "",
        f"`POST /search` takes `{media}`:",
        "",
        *fields_table(form),
        "",
        "Every error answers `ErrorBody`, `503` while draining with a `Retry-After` header:",
        "",
        *statuses_table(paths),
    ]
    for name, model in models.items():
        if name != body["schema"]["$ref"].rsplit("/", 1)[1]:
            parts += ["", f"`{name}`: {model.get('description', '')}", "", *fields_table(model)]
    return "\n".join([*parts, END])


def current_schema() -> dict[str, Any]:
    """The schema of the service (the same for every config; nothing is opened)."""
    from mars_core.app.serve.app import create_app
    from mars_core.config import MarsConfig

    return create_app(MarsConfig()).openapi()


def generated_part(page: str) -> str | None:
    """The part of `page` between the markers (with them); None when it has none."""
    if BEGIN not in page or END not in page:
        return None
    start = page.index(BEGIN)
    return page[start : page.index(END, start) + len(END)]


def main() -> None:
    page = PAGE.read_text(encoding="utf-8")
    old = generated_part(page)
    if old is None:
        print(f"error: {PAGE} has no generated API part (its markers)", file=sys.stderr)
        sys.exit(2)
    PAGE.write_text(page.replace(old, render(current_schema())), "utf-8")
    print(f"wrote the API reference into {PAGE}")


if __name__ == "__main__":
    main()
