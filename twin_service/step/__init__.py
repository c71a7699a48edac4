"""POST /step: column-wise sample parsing, the model run, state and telemetry records."""
