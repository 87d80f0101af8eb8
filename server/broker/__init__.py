"""Tradovate broker layer: REST, user-sync WebSocket and market data. Knows nothing of gRPC."""
