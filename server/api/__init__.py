"""The gRPC surface: servicer, interceptors, health, the status table and the server."""
