"""The replicas section of ``make bench`` (bench/scenarios/replicas.py): several gateway
processes sharing one Tradovate login over Redis (GATEWAY_REPLICAS=redis)."""
