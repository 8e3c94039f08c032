"""Providers that ship with rmas: the SQL store node and the SLTD-style service adapter."""
