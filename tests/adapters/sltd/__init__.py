"""The SLTD-style service's test data: its tokens and the records it is seeded with."""

TOKENS = {"nz-token": "NZ", "au-token": "AU"}
ADMIN = "admin-token"
SEED = [
    {"country": "NZ", "doc_type": "PASSPORT", "number": "LS900001", "status": "STOLEN",
     "event_date": "2025-03-01", "circumstances": "stolen abroad", "reporting_country": "NZ"},
    {"country": "AU", "doc_type": "PASSPORT", "number": "LA900001", "status": "LOST",
     "event_date": "2024-02-02", "circumstances": "", "reporting_country": "AU"},
    {"country": "NZ", "doc_type": "PASSPORT", "number": "LA9OO002", "status": "REVOKED",
     "event_date": "", "circumstances": "", "reporting_country": "NZ"},
    {"country": "PH", "doc_type": "PASSPORT", "number": "PX000001", "status": "STOLEN_BLANK",
     "event_date": "", "circumstances": "", "reporting_country": "PH"},
]  # fmt: skip
