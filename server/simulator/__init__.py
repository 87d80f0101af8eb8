"""A faithful local Tradovate: REST, WebSockets, rate limits, and an admin API for tests."""
