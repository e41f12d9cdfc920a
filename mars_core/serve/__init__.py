"""The search service: the funnel behind HTTP (`POST /search`) and a web page at `/`.

`validation` turns what a request sends into a `SearchRequest` or a `UserInputError`;
`app.create_app` builds the FastAPI app that loads the funnel once and serializes searches.
"""
