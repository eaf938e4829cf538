"""The orchestrator: consumes simulation requests and runs the conversations."""
