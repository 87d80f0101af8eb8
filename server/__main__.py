"""`python -m trading_gateway.server` is `trading-gateway`."""

import sys

from trading_gateway.server.cli import main

sys.exit(main())
