"""File input/output shared by every stage: atomic writes, BIDS-derivative names, provenance."""
