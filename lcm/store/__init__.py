"""Parquet feature store: connectomes and brain–environment variables."""
