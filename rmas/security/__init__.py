"""mTLS, caller identities and roles: who is calling, and what they may do and see."""
