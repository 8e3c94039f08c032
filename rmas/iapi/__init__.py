"""The airline channel: UN/EDIFACT syntax, PAXLST in, CUSRES out (API and interactive API)."""
