"""`demo --logins N` without a gateway: the logins file it writes (secrets by reference
only) and what it prints (fits an 80x24 terminal)."""

from __future__ import annotations

import argparse
import stat
import tomllib
from pathlib import Path

import pytest

from trading_gateway.server import demo_many
from trading_gateway.server.cli import MAX_DEMO_LOGINS, build_parser
from trading_gateway.server.config import explicit_settings
from trading_gateway.server.demo_logins import (
    SECRET_ENV,
    FileLogin,
    from_credentials,
    numbered_names,
    write_logins_file,
)
from trading_gateway.server.demo_many import HEIGHT, WIDTH, DeskLogin, Desks, announce_lines
from trading_gateway.server.logins.load import load_logins
from trading_gateway.server.logins.spec import NAME_PATTERN
from trading_gateway.server.sim_settings import simulator_urls

PASSWORDS = ("pw-one-Zq8", "pw-two-Xr5", "pw-three-Kc1")


def logins() -> list[FileLogin]:
    return [
        from_credentials(
            name,
            {"name": f"user-{n}", "password": PASSWORDS[n], "appId": "app", "cid": 8},
            "demo",
        )
        for n, name in enumerate(numbered_names(3))
    ]


def test_the_logins_file_names_its_secrets_and_holds_none(tmp_path: Path) -> None:
    path = write_logins_file(tmp_path, logins(), SECRET_ENV)
    text = path.read_text()
    for password in PASSWORDS:
        assert password not in text
    entries = tomllib.loads(text)["login"]
    assert [e["name"] for e in entries] == ["desk-1", "desk-2", "desk-3"]
    assert all(NAME_PATTERN.fullmatch(e["name"]) for e in entries)
    assert {e["secret_env"] for e in entries} == {SECRET_ENV}
    assert entries[1]["username"] == "user-1" and entries[1]["cid"] == 8
    assert entries[1]["device_id"] == "demo-desk-2"
    assert not {"password", "secret"} & {key for e in entries for key in e}
    for entry, password in zip(entries, PASSWORDS, strict=True):
        secret_file = Path(entry["password_file"])
        assert secret_file.read_text() == password + "\n"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_the_gateway_reads_the_file_the_demo_writes(tmp_path: Path) -> None:
    path = write_logins_file(tmp_path, logins(), SECRET_ENV)
    settings = explicit_settings(
        **simulator_urls(
            rest_url="http://127.0.0.1:9/v1", ws_url="ws://127.0.0.1:9/v1/websocket",
            md_url="ws://127.0.0.1:10/v1/websocket",
        ),
        logins_file=str(path),
    )  # fmt: skip
    specs = load_logins(settings, {SECRET_ENV: "the-api-secret"})
    assert [(s.name, s.username, s.password) for s in specs] == [
        ("desk-1", "user-0", PASSWORDS[0]),
        ("desk-2", "user-1", PASSWORDS[1]),
        ("desk-3", "user-2", PASSWORDS[2]),
    ]
    assert {s.secret for s in specs} == {"the-api-secret"}
    assert {(s.env, s.rest_url, s.ws_url) for s in specs} == {
        ("demo", "http://127.0.0.1:9/v1", "ws://127.0.0.1:9/v1/websocket")
    }
    assert {(s.app_id, s.cid) for s in specs} == {("app", 8)}
    assert specs[2].device_id == "demo-desk-3"


def desks(count: int, accounts: int, folder: str) -> Desks:
    return Desks(
        logins_file=Path(folder) / "logins.toml",
        logins=tuple(
            DeskLogin(
                f"desk-{n}",
                f"demo-trader-{n}",
                tuple(f"DEMO{101000 + accounts * (n - 1) + a}" for a in range(1, accounts + 1)),
            )
            for n in range(1, count + 1)
        ),
    )


@pytest.mark.parametrize(
    ("count", "accounts"), [(2, 1), (3, 4), (4, 4), (5, 4), (MAX_DEMO_LOGINS, 30)]
)
@pytest.mark.parametrize(
    "bin_dir", [None, "$PWD/.venv/bin", "/home/someone/src/trading-gateway/.venv/bin"]
)
def test_what_the_demo_prints_fits_80_by_24(
    count: int, accounts: int, bin_dir: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_many, "_bin_dir", lambda: bin_dir)
    lines = announce_lines(
        sim_url="http://127.0.0.1:65535/v1",
        address="127.0.0.1:65535",
        metrics_port=65535,
        cache="in-memory",
        desks=desks(count, accounts, "/tmp/tg-demo-abcdefgh"),
    )
    assert len(lines) <= HEIGHT
    too_wide = [line for line in lines if len(line) > WIDTH]
    assert too_wide == []
    text = "\n".join(lines)
    assert f"{count} logins, {count * accounts} accounts" in text
    assert "desk-1 (demo-trader-1): DEMO101001" in text
    assert '["desk-2/DEMO' in text  # a login/name selector, on the continued grpcurl line
    assert "tradovate_gateway.login.desk-2" in text
    assert "export TRADING_GATEWAY_ADDRESS=$g" in text  # not the default address
    assert lines[-1] == "Press Ctrl-C to stop."
    setup = 3 if bin_dir and bin_dir.startswith("/home") else 2
    assert f"Try (paste the first {'two' if setup == 2 else 'three'} lines first):" in lines
    start = lines.index("  g=127.0.0.1:65535 s=tradovate_gateway.v1.TradingService")
    assert lines[start + setup].startswith("  grpcurl ")
    assert (f'PATH="{bin_dir}:$PATH"' in text) == (bin_dir is not None)
    if count > demo_many.SHOWN_LOGINS:
        assert f"and {count - demo_many.SHOWN_LOGINS + 1} more logins" in text


def test_many_accounts_are_cut_with_a_count() -> None:
    lines = demo_many.login_lines(desks(3, 30, "/tmp/x").logins)
    assert all(len(line) <= WIDTH for line in lines)
    shown, _, more = lines[0].split(": ", 1)[1].rpartition(" +")
    assert more.endswith(" more")
    assert len(shown.split()) + int(more.split()[0]) == 30


@pytest.mark.parametrize("given", ["0", "-1", "x", str(MAX_DEMO_LOGINS + 1)])
def test_a_bad_login_count_is_refused_with_the_range(
    given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["demo", "--logins", given])
    assert exited.value.code == 2
    assert f"from 1 to {MAX_DEMO_LOGINS}, got '{given}'" in capsys.readouterr().err


def test_one_login_is_the_default() -> None:
    args = build_parser().parse_args(["demo"])
    assert isinstance(args, argparse.Namespace) and args.logins == 1
