"""``convsim``: the command line of the gateway's API."""
