"""auth/accesstokenrequest, auth/renewaccesstoken and auth/me."""

from __future__ import annotations

import logging
from typing import Any

from trading_gateway.simulator.api import BadRequest, Call, Reply, Route
from trading_gateway.simulator.clock import iso
from trading_gateway.simulator.core import SimCore
from trading_gateway.simulator.sessions import Session

logger = logging.getLogger(__name__)

BAD_CREDENTIALS = (
    "Incorrect username or password. Please try again, noting that passwords are case-sensitive."
)
PASSWORD_EXPIRES = "2099-12-31T00:00:00.000Z"


def token_response(core: SimCore, session: Session) -> dict[str, Any]:
    user = core.user_of(session)
    return {
        "accessToken": session.access_token,
        "mdAccessToken": session.md_token,
        "expirationTime": iso(session.expires),
        "passwordExpirationTime": PASSWORD_EXPIRES,
        "userStatus": "Active",
        "userId": user["id"],
        "name": user["name"],
        "hasLive": False,
    }


def _parse_login(core: SimCore, call: Call) -> dict[str, Any]:
    if not isinstance(call.body, dict):
        raise BadRequest("Expected a JSON object body")
    return call.body


def _run_login(core: SimCore, call: Call, body: dict[str, Any]) -> Reply:
    # appId, appVersion, deviceId, cid (number or string) and sec are accepted as sent.
    name, password = body.get("name"), body.get("password")
    # Each user has its own password: one user's password never opens another user.
    known = core.world.passwords.get(name) if isinstance(name, str) else None
    if known is None or password != known[0]:
        logger.info("login refused for user name of length %d", len(str(name or "")))
        return Reply(200, {"errorText": BAD_CREDENTIALS})
    user_id = known[1]
    core.logins[user_id] += 1
    session = core.sessions.login(user_id)
    return Reply(200, token_response(core, session))


def _run_renew(core: SimCore, call: Call, params: Any) -> Reply:
    assert call.session is not None
    session = core.sessions.renew(call.session)
    return Reply(200, token_response(core, session))


def _run_me(core: SimCore, call: Call, params: Any) -> Reply:
    user = core.user_of(call.session)
    return Reply(
        200,
        {
            "userId": user["id"],
            "name": user["name"],
            "fullName": "Simulated Trader",
            "email": user["email"],
            "emailVerified": True,
            "isTrial": False,
        },
    )


def auth_routes() -> dict[str, Route]:
    return {
        "auth/accesstokenrequest": Route("POST", _run_login, _parse_login, auth=False),
        "auth/renewaccesstoken": Route("GET", _run_renew),
        "auth/me": Route("GET", _run_me),
    }
