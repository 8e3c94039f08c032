"""The hub's gRPC edge: servicers, proto <-> domain mapping, and the server's lifecycle."""
