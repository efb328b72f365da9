"""The sweep service: specs, search spaces, the Ray Tune driver, MLflow tracking, reports, CLI."""
