"""README's settings table and .env.example are generated from server/config.py and in sync."""

from __future__ import annotations

import pytest

from trading_gateway.server.config import (
    GatewaySettings,
    explicit_settings,
    known_variables,
    unknown_variables,
)
from trading_gateway.server.config_doc import (
    ENV_EXAMPLE,
    README,
    env_example,
    main,
    setting_docs,
    undocumented,
    with_table,
)


def test_every_setting_has_a_meaning() -> None:
    assert undocumented() == [], "add a meaning to MEANINGS in server/config_doc.py"


def test_readme_table_is_fresh() -> None:
    text = README.read_text()
    assert text == with_table(text), "README is stale: run `make config-doc`"


def test_env_example_is_fresh() -> None:
    assert ENV_EXAMPLE.read_text() == env_example(), ".env.example is stale: run `make config-doc`"


def test_the_check_command_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0, capsys.readouterr().out


def test_readme_and_env_example_cover_every_setting() -> None:
    readme, example = README.read_text(), ENV_EXAMPLE.read_text()
    assert len(set(known_variables())) == len(GatewaySettings.model_fields), (
        "two settings, one name"
    )
    for variable in known_variables():
        assert f"| `{variable}`" in readme, variable
        assert f"{variable}=" in example, variable


def test_env_example_defaults_load_as_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncommenting every default in .env.example changes nothing."""
    given = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        name, sep, value = line.removeprefix("# ").partition("=")
        if sep and value and name in known_variables():
            given[name] = value
    assert "GATEWAY_BATCH_SIZE" in given and "TRADOVATE_ENV" in given
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    loaded = GatewaySettings()
    defaults = explicit_settings()
    by_variable = {doc.variable: doc.field for doc in setting_docs()}
    for name in given:
        field = by_variable[name]
        assert getattr(loaded, field) == getattr(defaults, field), name


def test_bounds_and_choices_are_shown() -> None:
    docs = {doc.variable: doc for doc in setting_docs()}
    assert docs["GATEWAY_BATCH_SIZE"].allowed == "integer ≥ 1, ≤ 500"
    assert docs["GATEWAY_LOG_FORMAT"].allowed == "text, json"
    assert docs["GATEWAY_LISTEN"].flag == "--listen"
    assert docs["GATEWAY_MAX_CONCURRENT_RPCS"].default == "unset"


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("GATEWAY_LOG_LEVLE", "GATEWAY_LOG_LEVEL"),
        ("GATEWAY_TTL_POSITION_S", "GATEWAY_TTL_POSITIONS_S"),
        ("TRADOVATE_USER", "TRADOVATE_USERNAME"),
        ("gateway_metrics_prot", "GATEWAY_METRICS_PORT"),
    ],
)
def test_an_unknown_variable_names_the_closest_setting(variable: str, suggestion: str) -> None:
    [warning] = unknown_variables({variable: "1"})
    assert warning.startswith(f"{variable} is not a gateway setting and is ignored")
    assert warning.endswith(f"did you mean {suggestion}?")


def test_known_and_foreign_variables_are_not_warned_about() -> None:
    environ = {name: "1" for name in known_variables()}
    environ |= {"PATH": "/bin", "TRADING_GATEWAY_ADDRESS": "x", "gateway_listen": "x"}
    assert unknown_variables(environ) == []
    [warning] = unknown_variables({"GATEWAY_QQQQQQQQQQQQQQQQ": "1"})
    assert warning.endswith("see README, Configuration")


def test_no_meaning_for_a_setting_that_is_gone() -> None:
    from trading_gateway.server.config_doc import MEANINGS

    stale = sorted(set(MEANINGS) - set(GatewaySettings.model_fields))
    assert not stale, f"MEANINGS names settings config.py no longer has: {stale}"
