"""Pictures: bounded image loading and the SigLIP embedder that stages and steps share."""
