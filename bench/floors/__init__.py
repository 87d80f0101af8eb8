"""Bare grpc.aio servers measured in the same run as the gateway: the floors and ceilings."""
