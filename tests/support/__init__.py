"""Test helpers shared across test folders: local servers (archive, chat, the base), factories
(catalogue rows, ABO trees, agent views), the index fixtures and the DevTools (CDP) client."""
