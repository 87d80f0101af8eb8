"""Move the code under one import namespace: ``trading_gateway``. Safe to run again.

    python tools/namespace.py            # rewrite the tree it runs in, then ruff (if found)
    python tools/namespace.py --check    # exit 1, naming the files, when a rewrite is pending
    python tools/namespace.py --no-ruff  # rewrite only; sort imports and format yourself

The mechanical half of packaging (issue 17, item 8). The folders stay; their import names
change, as setup.py maps them:

    server/            server.*            ->  trading_gateway.server.*
    server/simulator/  server.simulator.*  ->  trading_gateway.simulator.*  (moved to simulator/)
    client/            client.*            ->  trading_gateway.client.*

What it rewrites, in every tracked or untracked, not ignored, text file of the kinds below:
- Python: import statements (``from server.x import``, ``from client import``, ``import
  server.x``); inside strings and comments only, dotted names whose prefix is a real module
  of the tree (mock/patch targets, logger names, ``python -m`` arguments, entry points, doc
  references), a bare ``"server"``/``"client"`` string after ``"-m",`` or ``logger=``, and
  the path ``server/simulator`` (now ``simulator``). Code that is not an import is left
  alone: ``client.watch(...)`` on a variable named ``client`` is not a module.
- Makefile, Dockerfile, Markdown, TOML, YAML, .env.example, shell scripts: the same dotted
  names, ``-m server``/``-m client``, and the simulator's path.

A name already under ``trading_gateway.`` is never matched again (the match must not follow
a dot), so a second run changes nothing. The generated protobuf code (its package,
``tradovate_gateway.v1``, keeps its name), constraints.txt, package-lock.json,
bench/results/ and docs/BENCHMARKS.md (measured history) are not touched.
Plain Python, standard library only.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import subprocess
import sys
import tokenize
from collections.abc import Iterable, Iterator
from pathlib import Path

NAMESPACE = "trading_gateway"
# Old import root -> new import root, the longest first so that server.simulator wins.
ROOTS: tuple[tuple[str, str], ...] = (
    ("server.simulator", f"{NAMESPACE}.simulator"),
    ("server", f"{NAMESPACE}.server"),
    ("client", f"{NAMESPACE}.client"),
)
OLD_SIM_DIR = Path("server/simulator")
NEW_SIM_DIR = Path("simulator")

PY_SUFFIXES = {".py", ".pyi"}
TEXT_SUFFIXES = {".md", ".toml", ".yml", ".yaml", ".cfg", ".ini", ".sh", ".txt"}
TEXT_NAMES = {"Makefile", "Dockerfile", ".env.example", "run"}
SKIPPED_PREFIXES = ("protos/tradovate_gateway/", "bench/results/", "node_modules/", "tools/")
SKIPPED_FILES = {
    "constraints.txt",
    "docs/BENCHMARKS.md",
    "package-lock.json",
    "tests/test_namespace_tool.py",  # its samples are the old names on purpose
}

# A dotted name that starts at a word boundary and does not follow a dot, a slash or a dash
# (an attribute, a path, a flag name). The module check decides the rest.
DOTTED = re.compile(r"(?<![\w./-])(?:server|client)(?:\.\w+)+")
SIM_PATH = re.compile(r"(?<![\w./-])server/simulator(?=\b|/)")
PROSE_IMPORT = re.compile(r"(?<![\w.])from (server|client) import\b")
DASH_M = re.compile(r"(?<=-m )(server|client)(?=[\s`'\"\]]|$)")
BARE_STRING = re.compile(r"""^([rRbBuU]?)(["'])(server|client|server\.simulator)\2$""")


def git_files(root: Path) -> list[Path]:
    """Tracked and untracked, not ignored, files (relative paths)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sorted({Path(p) for p in out.split("\0") if p and (root / p).is_file()})


def move_simulator(root: Path) -> list[str]:
    """server/simulator/ -> simulator/ (git mv when tracked); files added later follow."""
    old, new = root / OLD_SIM_DIR, root / NEW_SIM_DIR
    if not old.is_dir():
        return []
    moved: list[str] = []
    for path in sorted(p for p in old.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        target = new / path.relative_to(old)
        if target.exists():
            raise SystemExit(f"{target.relative_to(root)} exists: cannot move {path} onto it")
        target.parent.mkdir(parents=True, exist_ok=True)
        tracked = subprocess.run(
            ["git", "ls-files", "--error-unmatch", str(path)], cwd=root, capture_output=True
        ).returncode
        if tracked == 0:
            subprocess.run(["git", "mv", str(path), str(target)], cwd=root, check=True)
        else:
            shutil.move(path, target)
        moved.append(str(path.relative_to(root)))
    shutil.rmtree(old)
    return moved


def old_module_names(root: Path) -> set[str]:
    """Every module and package of the tree by its OLD dotted name (server.simulator.x too)."""
    names: set[str] = set()
    folders = (("server", "server"), ("client", "client"), (str(NEW_SIM_DIR), "server.simulator"))
    for folder, dotted in folders:
        base = root / folder
        if not (base / "__init__.py").is_file():
            continue
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if "__pycache__" in parts:
                continue
            names.add(".".join([dotted, *parts]))
    return names


def renamed(old: str) -> str:
    """server.x -> trading_gateway.server.x (the name must start with one of ROOTS)."""
    for prefix, new in ROOTS:
        if old == prefix or old.startswith(prefix + "."):
            return new + old[len(prefix) :]
    raise ValueError(old)


class Rewriter:
    def __init__(self, modules: set[str]) -> None:
        self.modules = modules

    def dotted(self, match: re.Match[str]) -> str:
        """The longest prefix that is a real module (root plus at least one part) moves."""
        text = match.group(0)
        parts = text.split(".")
        for n in range(len(parts), 1, -1):
            prefix = ".".join(parts[:n])
            if prefix in self.modules:
                rest = text[len(prefix) :]
                after = match.string[match.end() : match.end() + 1]
                if n == len(parts) and after == "(":
                    return text  # a call on a variable named like the module: client.watch(
                return renamed(prefix) + rest
        return text

    def prose(self, text: str) -> str:
        """Strings, comments and non-Python files."""
        text = SIM_PATH.sub(str(NEW_SIM_DIR), text)
        text = DASH_M.sub(lambda m: renamed(m.group(1)), text)
        text = PROSE_IMPORT.sub(lambda m: f"from {renamed(m.group(1))} import", text)
        return DOTTED.sub(self.dotted, text)

    def text_file(self, source: str) -> str:
        return self.prose(source)

    def python_file(self, source: str) -> str:
        edits = list(self._python_edits(source))
        if not edits:
            return source
        offsets = _line_offsets(source)
        out = source
        for (srow, scol), (erow, ecol), new in sorted(edits, reverse=True):
            start, end = offsets[srow - 1] + scol, offsets[erow - 1] + ecol
            out = out[:start] + new + out[end:]
        return out

    def _python_edits(self, source: str) -> Iterator[tuple[tuple[int, int], tuple[int, int], str]]:
        tokens = [
            t
            for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
        ]
        for i, tok in enumerate(tokens):
            if tok.type == tokenize.NAME and tok.string in ("from", "import"):
                yield from self._import_edit(tokens, i)
            elif tok.type in (tokenize.STRING, tokenize.COMMENT) or _is_fstring_middle(tok):
                new = self._string_token(tokens, i)
                if new != tok.string:
                    yield tok.start, tok.end, new

    def _import_edit(
        self, tokens: list[tokenize.TokenInfo], i: int
    ) -> Iterator[tuple[tuple[int, int], tuple[int, int], str]]:
        """``from server.x import`` / ``import client.y``: the dotted name right after."""
        if not _starts_statement(tokens, i):
            return
        j = i + 1
        if j >= len(tokens) or tokens[j].string not in ("server", "client"):
            return
        name, end = tokens[j].string, tokens[j].end
        k = j + 1
        while k + 1 < len(tokens) and tokens[k].string == ".":
            if tokens[k + 1].type != tokenize.NAME:
                break
            name += "." + tokens[k + 1].string
            end = tokens[k + 1].end
            k += 2
        if tokens[i].string == "import" and name in ("server", "client"):
            return  # ``import server`` binds the name server: left for a person to see
        yield tokens[j].start, end, renamed(name)

    def _string_token(self, tokens: list[tokenize.TokenInfo], i: int) -> str:
        tok = tokens[i]
        bare = BARE_STRING.match(tok.string)
        if bare and _after_dash_m_or_logger(tokens, i):
            prefix, quote, name = bare.groups()
            return f"{prefix}{quote}{renamed(name)}{quote}"
        return self.prose(tok.string)


def _starts_statement(tokens: list[tokenize.TokenInfo], i: int) -> bool:
    """The token opens a line (NL/NEWLINE are dropped) or follows a semicolon."""
    if i == 0 or tokens[i - 1].string == ";":
        return True
    return tokens[i - 1].end[0] < tokens[i].start[0]


def _is_fstring_middle(tok: tokenize.TokenInfo) -> bool:
    return tokenize.tok_name.get(tok.type) == "FSTRING_MIDDLE"


def _after_dash_m_or_logger(tokens: list[tokenize.TokenInfo], i: int) -> bool:
    """``"-m", "server"``, ``logger="server"``, ``getLogger("server")``."""
    if i >= 2 and tokens[i - 1].string == "," and tokens[i - 2].string in ('"-m"', "'-m'"):
        return True
    if i >= 2 and tokens[i - 1].string == "=" and tokens[i - 2].string == "logger":
        return True
    return i >= 2 and tokens[i - 1].string == "(" and tokens[i - 2].string == "getLogger"


def _line_offsets(source: str) -> list[int]:
    offsets, total = [], 0
    for line in source.splitlines(keepends=True):
        offsets.append(total)
        total += len(line)
    offsets.append(total)
    return offsets


def candidates(files: Iterable[Path]) -> Iterator[tuple[Path, bool]]:
    """(path, is_python) for every file the rewrite reads."""
    for path in files:
        text = path.as_posix()
        if text.startswith(SKIPPED_PREFIXES) or text in SKIPPED_FILES:
            continue
        if path.suffix in PY_SUFFIXES:
            yield path, True
        elif path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES:
            yield path, False


def rewrite(root: Path, *, write: bool) -> list[str]:
    """Rewrite every candidate file; the relative paths of those that changed (or would)."""
    rewriter = Rewriter(old_module_names(root))
    changed: list[str] = []
    for path, is_python in candidates(git_files(root)):
        full = root / path
        try:
            source = full.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        new = rewriter.python_file(source) if is_python else rewriter.text_file(source)
        if new != source:
            changed.append(path.as_posix())
            if write:
                full.write_text(new, encoding="utf-8")
    return changed


def run_ruff(root: Path) -> None:
    """Imports moved from the ``client``/``server`` blocks re-sort; long lines re-wrap."""
    ruff = shutil.which("ruff", path=str(root / ".venv" / "bin")) or shutil.which("ruff")
    if ruff is None:
        print("ruff not found: run `ruff check --select I --fix . && ruff format .`")
        return
    subprocess.run([ruff, "check", "--select", "I", "--fix", "--quiet", "."], cwd=root)
    subprocess.run([ruff, "format", "--quiet", "."], cwd=root, check=True)
    long_lines = subprocess.run(
        [ruff, "check", "--select", "E501", "--output-format", "concise", "--quiet", "."],
        cwd=root,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if long_lines:
        print("lines now over the limit (prose ruff format cannot wrap): fix by hand")
        print(long_lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--check", action="store_true", help="report pending rewrites only")
    parser.add_argument("--no-ruff", action="store_true", help="skip import sort and format")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    if args.check:
        pending = rewrite(root, write=False)
        if (root / OLD_SIM_DIR).is_dir():
            pending.insert(0, f"{OLD_SIM_DIR}/ (to move to {NEW_SIM_DIR}/)")
        for name in pending:
            print(f"pending: {name}")
        return 1 if pending else 0
    moved = move_simulator(root)
    changed = rewrite(root, write=True)
    if not args.no_ruff and (moved or changed):
        run_ruff(root)
    print(f"moved {len(moved)} files to {NEW_SIM_DIR}/, rewrote {len(changed)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
