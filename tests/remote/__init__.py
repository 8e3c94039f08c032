"""Tests of national nodes and the hub's client for them."""
