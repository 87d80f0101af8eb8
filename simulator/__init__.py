"""A faithful local Tradovate: REST, WebSockets, rate limits, and an admin API for tests."""

from trading_gateway.simulator.app import Simulator
from trading_gateway.simulator.config import EndpointLimit, SimConfig
from trading_gateway.simulator.control import Control

__all__ = ["Control", "EndpointLimit", "SimConfig", "Simulator"]
