"""The CLI's exit codes (README, Client and CLI). Scripts can rely on them.

0   every account answered (or the command needed no accounts)
1   the call failed: nothing was printed on stdout (the reason is one line on stderr)
2   bad flags or local input (an unreadable TLS file, a malformed API key)
3   partial: the result was printed, but some accounts answered with an error
    (listed under the table as "accounts not OK"), or a login could not list its
    accounts (listed as "logins not available": its accounts are missing)
130 interrupted (Ctrl-C)

A closed stdout (``trading-gateway watch --plain | head``) ends the command quietly with 0.
"""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_CALL_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_PARTIAL: Final = 3
EXIT_INTERRUPTED: Final = 130

HELP: Final = (
    "exit codes: 0 ok; 1 the call failed; 2 bad flags or input; "
    "3 partial (some accounts answered with an error, or a login's are missing); "
    "130 interrupted"
)
