"""The gateway: HTTP in front of the simulation pipeline."""
