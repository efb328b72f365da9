"""What a sweep recorded: MLflow runs written and read back, stores, listings and the rule that
names the best configuration."""
