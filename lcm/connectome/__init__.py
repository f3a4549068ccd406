"""The connectome stage: parcel time series, denoising and Pearson connectivity per run,
with a QC record for every run (excluded runs included, with their reason)."""
