"""`python -m server` is `trading-gateway`."""

import sys

from server.cli import main

sys.exit(main())
