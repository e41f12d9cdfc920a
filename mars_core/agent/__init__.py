"""Stage 3: the VLM agent that scores how well a product fits a room, with a rationale."""
