"""Live state from Tradovate's user-sync socket, and the stream hub that fans it out.

One user-sync socket and one market-data socket per login feed an in-memory state
(``state``), whose proto views (``views``) answer unary reads with source LIVE and feed
``StreamUpdates`` through the hub (``hub``): one gap-free sequence per process, a bounded
replay buffer, and one bounded conflating queue per subscriber.
"""
