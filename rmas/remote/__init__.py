"""National nodes over gRPC: a node that hosts a provider, and the hub's resilient client."""
