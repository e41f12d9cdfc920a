"""The search funnel: one contract (`Stage.rank`) for BM25, SigLIP and the agent."""
