"""Fakes of the remote services, served as real HTTP servers on loopback."""
