"""A faithful local Tradovate: REST, WebSockets, rate limits, and an admin API for tests."""

from server.simulator.app import Simulator
from server.simulator.config import EndpointLimit, SimConfig
from server.simulator.control import Control

__all__ = ["Control", "EndpointLimit", "SimConfig", "Simulator"]
