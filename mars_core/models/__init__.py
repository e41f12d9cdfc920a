"""Model building (tiny offline recipes) and the one loading path for real and tiny models."""
