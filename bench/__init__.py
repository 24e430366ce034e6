"""`make bench`: the gateway measured on this machine, next to a peer (see docs/performance.md)."""
