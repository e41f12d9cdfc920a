"""Stage 1 and 2 indexes (Lucene, LanceDB), their manifest, the incremental re-index, and
the category vocabulary that says which catalogue categories a query can lock to."""
