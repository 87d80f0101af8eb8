"""Many Tradovate logins in one gateway: their specs, one runtime each, and the
deployment-wide view (account directory, reads and streams across logins)."""
