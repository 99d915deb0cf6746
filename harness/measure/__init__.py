"""What the run measured and what it means: metrics, observations, thresholds, snapshots, time series."""
