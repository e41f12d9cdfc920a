"""The stage registry: one funnel built from stage names, shared by batch search, the service
and the evaluation (so it sits below all three)."""
