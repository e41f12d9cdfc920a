"""The search service: the funnel behind HTTP (`POST /search`) and a web page at `/`.

`validation` turns what a request sends into a `SearchRequest` or a `UserInputError`;
`follow` holds what requests are answered from (an index build and a student) and swaps in a
new build or champion between requests; `app.create_app` builds the FastAPI app around both.
"""
