"""Teacher labelling: a score in [0, 1] and a one-sentence rationale for every mined pair."""
