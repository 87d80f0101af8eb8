"""tools/namespace.py: what it rewrites, what it leaves, and that a second run changes nothing.

The samples here use the old import names on purpose; the tool skips this file.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "namespace.py"


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("namespace_tool", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tool = load_tool()
MODULES = {
    "server",
    "server.main",
    "server.api",
    "server.api.access",
    "server.simulator",
    "server.simulator.app",
    "client",
    "client.client",
    "client.watch",
    "client.healthcheck",
}

PY_BEFORE = '''"""Uses server.main.Gateway;
`python -m client.healthcheck`;
see server/simulator/app.py.

    from client import TradingClient
"""
from client import TradingClient
from client.watch import Watch
from server.simulator.app import Simulator
import server.main
from server import main  # server.api.access logs here
from tradovate_gateway.v1 import trading_pb2

LOGGER = "server.api.access"
TARGET = "server.main.LOGIN_RETRY_INITIAL"
ARGV = [sys.executable, "-m", "server", "serve"]
ARGV2 = [sys.executable, "-m", "server.simulator.app"]
caplog.set_level(logging.INFO, logger="server")
client.watch(["DEMO1"])
client.client.close()
x = "client.watch(is a call)"
y = "server.nothing_here and client.py and server/api/server.py"
'''

PY_AFTER = '''"""Uses trading_gateway.server.main.Gateway;
`python -m trading_gateway.client.healthcheck`;
see simulator/app.py.

    from trading_gateway.client import TradingClient
"""
from trading_gateway.client import TradingClient
from trading_gateway.client.watch import Watch
from trading_gateway.simulator.app import Simulator
import trading_gateway.server.main
from trading_gateway.server import main  # trading_gateway.server.api.access logs here
from tradovate_gateway.v1 import trading_pb2

LOGGER = "trading_gateway.server.api.access"
TARGET = "trading_gateway.server.main.LOGIN_RETRY_INITIAL"
ARGV = [sys.executable, "-m", "trading_gateway.server", "serve"]
ARGV2 = [sys.executable, "-m", "trading_gateway.simulator.app"]
caplog.set_level(logging.INFO, logger="trading_gateway.server")
client.watch(["DEMO1"])
client.client.close()
x = "client.watch(is a call)"
y = "server.nothing_here and client.py and server/api/server.py"
'''

TEXT_BEFORE = """\
trading-gateway = "server.cli:main"
tradovate-sim = "server.simulator.cli:main"
	$(BIN)/python -m server.config_doc
CMD ["python", "-m", "client.healthcheck", "127.0.0.1:50051"]
run `python -m server serve`; the simulator lives in server/simulator/.
"""

TEXT_AFTER = """\
trading-gateway = "trading_gateway.server.cli:main"
tradovate-sim = "trading_gateway.simulator.cli:main"
	$(BIN)/python -m trading_gateway.server.config_doc
CMD ["python", "-m", "trading_gateway.client.healthcheck", "127.0.0.1:50051"]
run `python -m trading_gateway.server serve`; the simulator lives in simulator/.
"""


@pytest.fixture
def rewriter() -> Any:
    modules = MODULES | {"server.cli", "server.config_doc", "server.simulator.cli"}
    return tool.Rewriter(modules)


def test_python_imports_strings_and_comments_move_code_calls_stay(rewriter: Any) -> None:
    assert rewriter.python_file(PY_BEFORE) == PY_AFTER


def test_python_rewrite_is_idempotent(rewriter: Any) -> None:
    assert rewriter.python_file(PY_AFTER) == PY_AFTER


def test_text_files_move_entry_points_commands_and_paths(rewriter: Any) -> None:
    assert rewriter.text_file(TEXT_BEFORE) == TEXT_AFTER
    assert rewriter.text_file(TEXT_AFTER) == TEXT_AFTER


def git(cwd: Path, *argv: str) -> str:
    done = subprocess.run(["git", *argv], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def test_a_tree_is_moved_once_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    files = {
        "server/__init__.py": "",
        "server/main.py": "from server.simulator import app\n",
        "server/simulator/__init__.py": "",
        "server/simulator/app.py": "from server.simulator import __name__ as me\n",
        "client/__init__.py": '"""from client import TradingClient"""\n',
        "client/client.py": "import client.client\n",
        "Makefile": "demo:\n\tpython -m server.main\n",
        "docs/BENCHMARKS.md": "python -m server.main (history: left alone)\n",
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(tmp_path, "init", "--quiet")
    git(tmp_path, "add", "-A")

    assert tool.main(["--root", str(tmp_path), "--check"]) == 1
    assert tool.main(["--root", str(tmp_path), "--no-ruff"]) == 0

    assert not (tmp_path / "server" / "simulator").exists()
    assert (tmp_path / "simulator" / "app.py").read_text() == (
        "from trading_gateway.simulator import __name__ as me\n"
    )
    assert (tmp_path / "server" / "main.py").read_text() == (
        "from trading_gateway.simulator import app\n"
    )
    assert (tmp_path / "client" / "__init__.py").read_text() == (
        '"""from trading_gateway.client import TradingClient"""\n'
    )
    assert (
        tmp_path / "client" / "client.py"
    ).read_text() == "import trading_gateway.client.client\n"
    assert "-m trading_gateway.server.main" in (tmp_path / "Makefile").read_text()
    assert (tmp_path / "docs" / "BENCHMARKS.md").read_text() == files["docs/BENCHMARKS.md"]
    assert "simulator/app.py" in git(tmp_path, "diff", "--cached", "--name-only")

    snapshot = {
        p: p.read_text() for p in tmp_path.rglob("*") if p.is_file() and ".git" not in p.parts
    }
    assert tool.main(["--root", str(tmp_path), "--check"]) == 0
    assert tool.main(["--root", str(tmp_path), "--no-ruff"]) == 0
    again = {p: p.read_text() for p in tmp_path.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert again == snapshot
