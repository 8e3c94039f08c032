"""`make bench`: the product against the bare stack, in the same run (ratios, not absolutes)."""
