"""Maintenance: verify, cleanup and gc. Each plans first, then executes."""
