"""What crosses a process boundary in convsim: request and event models, broker names."""
