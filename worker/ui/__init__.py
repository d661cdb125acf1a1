"""The read-only web view of batches and jobs (`tbatch ui`)."""
