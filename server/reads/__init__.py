"""The read path of the unary RPCs: one room for selecting accounts and answering reads.

- ``service.py``   ReadService: the read policy (live → cache → upstream) per account.
- ``accounts.py``  the selector, the account directory and the caller's scope.
- ``fanout.py``    upstream fetches: join in-flight, batch, hedge, isolate.
- ``loaders.py``   the broker calls per kind, joined into records.
- ``readcache.py`` the TTL cache of records, with the gateway's own copy for outages.
- ``records.py``   what a read produces per account: broker structs, source, time.

It imports no grpc and no protos: ``server/convert/`` turns its records into messages.
"""
