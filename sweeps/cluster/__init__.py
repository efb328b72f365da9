"""Where a sweep runs: Ray start-up and addresses, Ray Jobs, Slurm, forwarded credentials and
redaction of secrets."""
