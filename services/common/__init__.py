"""Small helpers both services use."""
