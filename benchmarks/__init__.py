"""`make bench`: the product measured against the bare stack, in the same run (ratios, not absolutes)."""
