"""A worked example of an economy's adapter: records exported as a JSON Lines file.

Start here when writing your own (docs/adapters.md walks through it).
"""
