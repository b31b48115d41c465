"""Service-desk connector: tickets become draft requests; request news goes back to tickets."""
