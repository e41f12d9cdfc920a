"""The catalogue: product and room tables every later stage reads (schema in `schema.py`)."""
