"""The search service: the funnel behind HTTP (`POST /search`) and a web page at `/`.

`validation` turns what a request sends into a `SearchRequest` or a `UserInputError`;
`follow` holds what requests are answered from (a `generation`: an index build and a
student) and swaps in a new build or champion between requests; `deadline` cuts a search
at `serve.request_timeout_s`; `shutdown` drains on SIGTERM; `metrics` serves `/metrics`;
`api` declares every answer's shape and `api_doc` writes it into the docs; `app.create_app`
builds the FastAPI app around them.
"""
