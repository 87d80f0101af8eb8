"""The trading-gateway benchmark suite: `python -m bench` (full) or `python -m bench --quick`.

Every scenario runs against the simulator with injected upstream latency and is compared,
in the same run, with the report's two baselines and with bare grpc.aio floors.
"""
