"""The logins file (server/logins/load.py): a good file's specs, and each refusal as the
exact one line `serve` prints (never with a secret in it)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests.support.secret_scan import register_secret
from trading_gateway.server.broker.urls import LIVE_REST_URL, MD_WS_URL
from trading_gateway.server.config import GatewaySettings, explicit_settings
from trading_gateway.server.logins.load import load_logins, read_logins_file, variables_named
from trading_gateway.server.logins.spec import LoginSpec, shorthand_spec
from trading_gateway.server.setting_error import SettingError

PASSWORD_A = "pw-desk-a-5be1c0"
PASSWORD_B = "pw-desk-b-e01f3c"
SECRET = "sec-shared-9d27aa"
LITERAL = "literal-never-shown-41d0"
ENVIRON = {"DESK_A_PASSWORD": PASSWORD_A, "DESK_SECRET": SECRET}
register_secret(PASSWORD_A, PASSWORD_B, SECRET, LITERAL)

GOOD = """
[defaults]
app_id = "desk-app"
app_version = "2.1"
cid = 42
secret_env = "DESK_SECRET"

[[login]]
name = "desk-a"
username = "alice"
password_env = "DESK_A_PASSWORD"

[[login]]
name = "desk-b"
username = "bob"
password_file = "secrets/desk-b"
environment = "live"
cid = "77"
device_id = "host-7"
"""

# One valid login; tests add or change a line.
ONE = """
[[login]]
name = "desk-a"
username = "alice"
password_env = "DESK_A_PASSWORD"
secret_env = "DESK_SECRET"
app_id = "desk-app"
cid = 42
"""


def write(tmp_path: Path, text: str, name: str = "logins.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def settings_for(path: Path, **values: Any) -> GatewaySettings:
    return explicit_settings(logins_file=str(path), **values)


def refusal(path: Path, *, environ: dict[str, str] | None = None, **values: Any) -> str:
    """The one line load_logins refuses ``path`` with, after 'GATEWAY_LOGINS_FILE=PATH: '."""
    with pytest.raises(SettingError) as caught:
        load_logins(settings_for(path, **values), ENVIRON if environ is None else environ)
    line = str(caught.value)
    prefix = f"GATEWAY_LOGINS_FILE={path}: "
    assert line.startswith(prefix), line
    assert "\n" not in line
    for secret in (PASSWORD_A, PASSWORD_B, SECRET, LITERAL):
        assert secret not in line
    assert caught.value.setting == "GATEWAY_LOGINS_FILE"
    return line.removeprefix(prefix)


def test_a_good_file_with_env_and_file_secrets(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "desk-b").write_text(PASSWORD_B + "\n")
    specs = load_logins(settings_for(write(tmp_path, GOOD)), ENVIRON)
    assert specs == [
        LoginSpec(
            name="desk-a",
            env="demo",
            rest_url="https://demo.tradovateapi.com/v1",
            ws_url="",
            md_ws_url=MD_WS_URL,
            username="alice",
            password=PASSWORD_A,
            app_id="desk-app",
            app_version="2.1",
            cid=42,
            secret=SECRET,
            device_id=None,
        ),
        LoginSpec(
            name="desk-b",
            env="live",
            rest_url=LIVE_REST_URL,
            ws_url="",
            md_ws_url=MD_WS_URL,
            username="bob",
            password=PASSWORD_B,  # the file's text without its trailing newline
            app_id="desk-app",
            app_version="2.1",
            cid=77,
            secret=SECRET,
            device_id="host-7",
        ),
    ]


def test_where_each_secret_came_from_is_kept(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "desk-b").write_text(PASSWORD_B)
    loaded = read_logins_file(settings_for(write(tmp_path, GOOD)), ENVIRON)
    sources = [(x.entry.password_from.describe(), x.entry.secret_from.describe()) for x in loaded]
    assert sources == [
        ("env DESK_A_PASSWORD", "env DESK_SECRET"),
        ("file secrets/desk-b", "env DESK_SECRET"),
    ]


def test_a_secret_file_loses_one_trailing_newline_only(tmp_path: Path) -> None:
    secret_file = tmp_path / "desk-a.secret"
    secret_file.write_text(SECRET + "\r\n")
    path = write(
        tmp_path, ONE.replace('secret_env = "DESK_SECRET"', 'secret_file = "desk-a.secret"')
    )
    assert load_logins(settings_for(path), ENVIRON)[0].secret == SECRET
    secret_file.write_text(SECRET + "\n\n")
    assert load_logins(settings_for(path), ENVIRON)[0].secret == SECRET + "\n"


def test_an_absolute_secret_file(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "pw").write_text(PASSWORD_A)
    text = ONE.replace('password_env = "DESK_A_PASSWORD"', f'password_file = "{elsewhere / "pw"}"')
    sub = tmp_path / "conf"
    sub.mkdir()
    assert load_logins(settings_for(write(sub, text)), ENVIRON)[0].password == PASSWORD_A


def test_secrets_stay_out_of_reprs_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "desk-b").write_text(PASSWORD_B)
    caplog.set_level(logging.DEBUG)
    loaded = read_logins_file(settings_for(write(tmp_path, GOOD)), ENVIRON)
    shown = repr(loaded) + caplog.text
    assert "desk-a" in shown and "DESK_A_PASSWORD" in shown
    for secret in (PASSWORD_A, PASSWORD_B, SECRET):
        assert secret not in shown


def test_no_file_is_the_single_shorthand_login() -> None:
    settings = explicit_settings(
        tradovate_username="solo",
        tradovate_password=PASSWORD_A,
        tradovate_app_id="app",
        tradovate_cid="9",
        tradovate_secret=SECRET,
    )
    assert load_logins(settings, {}) == [shorthand_spec(settings)]
    assert load_logins(settings, {})[0].name == "default"


def test_endpoints_default_to_the_gateways_then_tradovates(tmp_path: Path) -> None:
    text = (
        ONE
        + """
[[login]]
name = "desk-b"
username = "bob"
password_env = "DESK_A_PASSWORD"
secret_env = "DESK_SECRET"
app_id = "desk-app"
cid = 42
url = "http://127.0.0.1:9/v1/"
md_url = "ws://127.0.0.1:9/md"
"""
    )
    specs = load_logins(
        settings_for(
            write(tmp_path, text),
            tradovate_env="live",
            tradovate_url="http://sim:8000/v1",
            tradovate_ws_url="ws://sim:8000/v1/sync",
            tradovate_md_url="ws://sim:8000/v1/md",
        ),
        ENVIRON,
    )
    endpoints = [(s.env, s.rest_url, s.ws_url, s.md_ws_url) for s in specs]
    assert endpoints == [
        ("live", "http://sim:8000/v1", "ws://sim:8000/v1/sync", "ws://sim:8000/v1/md"),
        # its own url: its socket is derived from it, not the gateway's TRADOVATE_WS_URL
        ("live", "http://127.0.0.1:9/v1", "", "ws://127.0.0.1:9/md"),
    ]


def test_defaults_url_applies_to_every_login(tmp_path: Path) -> None:
    text = '[defaults]\nurl = "https://proxy.internal/v1"\nenvironment = "live"\n' + ONE
    [spec] = load_logins(settings_for(write(tmp_path, text)), ENVIRON)
    assert (spec.env, spec.rest_url, spec.ws_url) == ("live", "https://proxy.internal/v1", "")


def test_the_same_username_on_two_environments_is_two_users(tmp_path: Path) -> None:
    second = ONE.replace("desk-a", "desk-a-live") + 'environment = "live"\n'
    specs = load_logins(settings_for(write(tmp_path, ONE + second)), ENVIRON)
    assert [s.env for s in specs] == ["demo", "live"]


def test_variables_named_lists_the_files_secret_variables(tmp_path: Path) -> None:
    assert variables_named(settings_for(write(tmp_path, ONE))) == {
        "DESK_A_PASSWORD",
        "DESK_SECRET",
    }
    assert variables_named(settings_for(tmp_path / "missing.toml")) == set()
    assert variables_named(explicit_settings()) == set()


# --- refusals: each the exact line after "GATEWAY_LOGINS_FILE=PATH: " ---------------------


def test_a_missing_file(tmp_path: Path) -> None:
    line = refusal(tmp_path / "nope.toml")
    assert line == (
        "cannot read the logins file (No such file or directory); check the path and its "
        "permissions, or unset it for the single TRADOVATE_* login"
    )


def test_toml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    line = refusal(write(tmp_path, "[[login]]\nname = desk-a\n"))
    assert line == (
        "not valid TOML: Invalid value (at line 2, column 8); fix the file (README, Many "
        "logins, shows one)"
    )


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "[defaults]\ncid = 1\n", "login = []\n"])
def test_a_file_without_logins(tmp_path: Path, text: str) -> None:
    line = refusal(write(tmp_path, text))
    assert line == (
        "the file has no [[login]] tables; add one [[login]] table per Tradovate user "
        "(README, Many logins), or unset GATEWAY_LOGINS_FILE for the single TRADOVATE_* login"
    )


def test_a_single_login_table(tmp_path: Path) -> None:
    line = refusal(write(tmp_path, ONE.replace("[[login]]", "[login]")))
    assert line == (
        "[login] is a single table; write each login as a [[login]] table (two brackets)"
    )


def test_a_login_key_that_is_not_tables(tmp_path: Path) -> None:
    line = refusal(write(tmp_path, 'login = "desk-a"\n'))
    assert line == "login is a string, not [[login]] tables; write each login as a [[login]] table"


def test_an_unknown_top_level_table(tmp_path: Path) -> None:
    line = refusal(write(tmp_path, ONE.replace("[[login]]", "[[logins]]")))
    assert line == (
        'unknown table or key "logins" at the top level (did you mean "login"?); the file '
        "holds [defaults] and [[login]] tables (README, Many logins)"
    )


def test_an_unknown_key_names_the_nearest(tmp_path: Path) -> None:
    line = refusal(write(tmp_path, ONE.replace("password_env", "pasword_env")))
    assert line == (
        'login "desk-a" (entry 1): unknown key "pasword_env" (did you mean "password_env"?); '
        "fix or remove it (README, Many logins, lists the keys)"
    )


def test_an_unknown_key_in_defaults(tmp_path: Path) -> None:
    line = refusal(write(tmp_path, '[defaults]\nenviron = "live"\n' + ONE))
    assert line == (
        '[defaults]: unknown key "environ" (did you mean "environment"?); fix or remove it '
        "(README, Many logins, lists the keys)"
    )


@pytest.mark.parametrize(
    ("key", "what"), [("password", "password"), ("secret", "secret"), ("sec", "secret")]
)
def test_a_literal_secret_is_refused_without_showing_it(
    tmp_path: Path, key: str, what: str
) -> None:
    line = refusal(write(tmp_path, ONE + f'{key} = "{LITERAL}"\n'))
    assert line == (
        f'login "desk-a" (entry 1): {key} holds a {what} itself, and the file must never hold '
        f'secrets; name where it is kept instead: {what}_env = "VARIABLE" or '
        f'{what}_file = "PATH"'
    )


def test_a_literal_secret_in_defaults(tmp_path: Path) -> None:
    line = refusal(write(tmp_path, f'[defaults]\nsecret = "{LITERAL}"\n' + ONE))
    assert line.startswith("[defaults]: secret holds a secret itself")


@pytest.mark.parametrize("key", ["name", "username", "password_env"])
def test_one_logins_own_key_is_not_a_default(tmp_path: Path, key: str) -> None:
    line = refusal(write(tmp_path, f'[defaults]\n{key} = "x"\n' + ONE))
    assert line == (
        f"[defaults]: {key} is one login's own, not a default; move it into each [[login]] table"
    )


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        (
            'name = "desk-a"\n',
            'entry 1: no name; add name = "..." (each [[login]] needs its own)',
        ),
        (
            'username = "alice"\n',
            'login "desk-a" (entry 1): no username; add username = "..." (each [[login]] '
            "needs its own)",
        ),
        (
            'password_env = "DESK_A_PASSWORD"\n',
            'login "desk-a" (entry 1): no password_env or password_file; name where the '
            'password is kept: password_env = "VARIABLE" or password_file = "PATH"',
        ),
        (
            'secret_env = "DESK_SECRET"\n',
            'login "desk-a" (entry 1): no secret_env or secret_file (here or in [defaults]); '
            'name where the secret is kept: secret_env = "VARIABLE" or secret_file = "PATH"',
        ),
        (
            'app_id = "desk-app"\n',
            'login "desk-a" (entry 1): no app_id; add app_id = "..." (add it to the entry or '
            "to [defaults])",
        ),
        (
            "cid = 42\n",
            'login "desk-a" (entry 1): no cid; add cid = ... to the entry or to [defaults]',
        ),
    ],
)
def test_a_missing_field(tmp_path: Path, drop: str, expected: str) -> None:
    line = refusal(write(tmp_path, ONE.replace(drop, "")))
    assert line == expected


def test_both_places_for_one_secret(tmp_path: Path) -> None:
    line = refusal(write(tmp_path, ONE + 'password_file = "pw"\n'))
    assert line == (
        'login "desk-a" (entry 1): both password_env and password_file are set; keep one of them'
    )


@pytest.mark.parametrize("name", ["Desk-A", "desk a", "-desk", "d" * 33])
def test_a_bad_name(tmp_path: Path, name: str) -> None:
    line = refusal(write(tmp_path, ONE.replace('"desk-a"', f'"{name}"')))
    assert line == (
        f'entry 1: name "{name}" is not a login name; use 1 to 32 lowercase letters, digits, '
        "- or _, starting with a letter or digit"
    )


def test_an_empty_name(tmp_path: Path) -> None:
    line = refusal(write(tmp_path, ONE.replace('"desk-a"', '""')))
    assert line == "entry 1: name is empty; give it a value or remove the key"


def test_a_duplicate_name(tmp_path: Path) -> None:
    second = ONE.replace('"alice"', '"carol"')
    line = refusal(write(tmp_path, ONE + second))
    assert line == (
        'login "desk-a" (entry 2): the name is already entry 1\'s; give each login its own name'
    )


def test_two_logins_of_one_user(tmp_path: Path) -> None:
    second = ONE.replace('"desk-a"', '"desk-c"').replace('"alice"', '"Alice"')
    line = refusal(write(tmp_path, ONE + second))
    assert line == (
        'login "desk-c" (entry 2): user "Alice" on https://demo.tradovateapi.com/v1 is '
        'already login "desk-a" (entry 1); keep one: two logins of one Tradovate user evict '
        "each other's sessions"
    )


@pytest.mark.parametrize(
    ("values", "stray"),
    [
        ({"tradovate_username": "solo"}, "TRADOVATE_USERNAME is"),
        (
            {"tradovate_username": "solo", "tradovate_password": PASSWORD_B},
            "TRADOVATE_USERNAME, TRADOVATE_PASSWORD are",
        ),
        ({"tradovate_app_id": "app", "tradovate_cid": "3"}, "TRADOVATE_APP_ID, TRADOVATE_CID are"),
    ],
)
def test_shorthand_credentials_beside_a_file(
    tmp_path: Path, values: dict[str, Any], stray: str
) -> None:
    line = refusal(write(tmp_path, ONE), **values)
    assert line == (
        f"{stray} set as well, and a logins file replaces the single TRADOVATE_* login; "
        "unset them, or move that login into the file (app_id, cid and the like go in a "
        "[[login]] or [defaults]; password_env and secret_env may name any variable)"
    )


def test_a_shorthand_variable_the_file_names_is_used_not_refused(tmp_path: Path) -> None:
    text = ONE.replace('"DESK_SECRET"', '"TRADOVATE_SECRET"')
    settings = settings_for(write(tmp_path, text), tradovate_secret=SECRET)
    [spec] = load_logins(settings, {"DESK_A_PASSWORD": PASSWORD_A, "TRADOVATE_SECRET": SECRET})
    assert spec.secret == SECRET


def test_empty_shorthand_variables_are_unset(tmp_path: Path) -> None:
    """.env.example leaves them empty (TRADOVATE_USERNAME=): that is not a second login."""
    settings = settings_for(write(tmp_path, ONE), tradovate_username="", tradovate_password="")
    assert [s.name for s in load_logins(settings, ENVIRON)] == ["desk-a"]


def test_a_password_variable_that_is_not_set(tmp_path: Path) -> None:
    second = ONE.replace('"desk-a"', '"desk-b"').replace('"alice"', '"bob"')
    second = second.replace("DESK_A_PASSWORD", "DESK_B_PASSWORD")
    line = refusal(write(tmp_path, ONE + second))
    assert line == (
        'login "desk-b" (entry 2): password_env DESK_B_PASSWORD is not set; export it or use '
        "password_file"
    )


def test_an_empty_secret_variable(tmp_path: Path) -> None:
    line = refusal(write(tmp_path, ONE), environ={"DESK_A_PASSWORD": PASSWORD_A, "DESK_SECRET": ""})
    assert line == (
        'login "desk-a" (entry 1): secret_env DESK_SECRET is empty; export the secret in it or '
        "use secret_file"
    )


def test_an_unreadable_secret_file(tmp_path: Path) -> None:
    text = ONE.replace('secret_env = "DESK_SECRET"', 'secret_file = "missing.secret"')
    line = refusal(write(tmp_path, text))
    assert line == (
        'login "desk-a" (entry 1): secret_file missing.secret cannot be read (No such file or '
        "directory); check the path (relative paths start at the logins file's folder) and "
        "its permissions, or use secret_env"
    )


def test_an_empty_password_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("\n")
    text = ONE.replace('password_env = "DESK_A_PASSWORD"', 'password_file = "pw"')
    line = refusal(write(tmp_path, text))
    assert line == (
        'login "desk-a" (entry 1): password_file pw is empty; write the password in it or use '
        "password_env"
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("cid = 42", "cid = true"),
            'login "desk-a" (entry 1): cid is a boolean; write it as a number: cid = 1234',
        ),
        (
            ('"alice"', "7"),
            'login "desk-a" (entry 1): username is an integer, not a string; quote it: '
            'username = "..."',
        ),
        (
            ('"desk-app"', '""'),
            'login "desk-a" (entry 1): app_id is empty; give it a value or remove the key',
        ),
    ],
)
def test_a_value_of_the_wrong_type(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    line = refusal(write(tmp_path, ONE.replace(*change)))
    assert line == expected


def test_an_unknown_environment(tmp_path: Path) -> None:
    line = refusal(write(tmp_path, ONE + 'environment = "paper"\n'))
    assert line == (
        'login "desk-a" (entry 1): environment "paper" is neither demo nor live; write '
        'environment = "demo" or environment = "live"'
    )


def test_a_url_without_its_scheme_hides_its_password(tmp_path: Path) -> None:
    line = refusal(write(tmp_path, ONE + f'url = "ftp://ops:{LITERAL}@proxy/v1"\n'))
    assert line == (
        'login "desk-a" (entry 1): url ftp://ops:***@proxy/v1 does not start with http:// or '
        "https://; give the full URL"
    )


def test_the_shape_of_the_file_is_checked_before_any_secret(tmp_path: Path) -> None:
    """With no secret set at all, a later entry's bad key is still the line shown."""
    second = ONE.replace('"desk-a"', '"desk-b"').replace("cid = 42", 'cid = 42\ncolour = "red"')
    line = refusal(write(tmp_path, ONE + second), environ={})
    assert line.startswith('login "desk-b" (entry 2): unknown key "colour"')


def test_the_readme_example_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Many logins", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    for name, value in (("desk-b-password", PASSWORD_B), ("desk-b-api-secret", SECRET)):
        (tmp_path / name).write_text(value + "\n")
    path = write(tmp_path, example.replace("/run/secrets/", f"{tmp_path}/"))
    environ = {"DESK_A_PASSWORD": PASSWORD_A, "ACME_API_SECRET": SECRET}
    specs = load_logins(settings_for(path), environ)
    assert [(s.name, s.username, s.env, s.cid, s.password) for s in specs] == [
        ("desk-a", "acme.desk.a", "demo", 1234, PASSWORD_A),
        ("desk-b", "acme.desk.b", "live", 5678, PASSWORD_B),
    ]
