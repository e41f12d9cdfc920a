"""Stage 1 and 2 indexes (Lucene, LanceDB), their manifest and the incremental re-index."""
