"""EDL destination (being written)."""
