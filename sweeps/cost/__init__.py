"""What a sweep costs before it runs: cost shapes, calibration, the list-schedule forecast."""
