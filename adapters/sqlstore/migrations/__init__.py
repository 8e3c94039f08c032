"""Alembic migrations of the SQL store's schema (applied by ``rmas store migrate``)."""
