"""The catalogue: ingest of ABO listings and room photos into the product and room tables
every later stage reads (schema in `schema.py`, ingest in `ingest.py`), and their splits."""
