"""``opos``: the command-line client of OPOS Tracker (speaks only to the REST API)."""
