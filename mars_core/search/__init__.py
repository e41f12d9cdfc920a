"""The search funnel: one contract (`Stage.rank`, in `types.py`) for BM25, SigLIP and the
agent, the funnel that runs them, and batch request/result I/O."""
