"""The fMRIPrep stage: build and run the container command per subject, then check that the
derivatives a connectome needs (preprocessed BOLD, its TR, mask, confounds) exist."""
