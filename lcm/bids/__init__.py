"""BIDS ingestion: index a dataset (raw BIDS, fMRIPrep derivatives or ROI time series) into a
manifest with one row per run, each run either included or excluded with its reason."""
