"""buf lint and buf breaking over protos/, the contract every client language loads.

Breaking is checked against main's protos as this change found them:
- on a branch: the commit where it left main (git merge-base), so fields main gained
  since then do not count as "deleted" here;
- on main itself (CI's fresh clone): main's previous commit, so a breaking commit on main
  fails; in a shallow clone with no parent, the working tree against HEAD.
The reference tree is taken with `git archive` (no network, works in shallow clones). A
reference from before the google/rpc files were vendored gets today's vendored copies, so
it still compiles.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.contract.node_tools import PROTOS, ROOT, buf

pytestmark = pytest.mark.timeout(120)

MAIN_REFS = ("main", "origin/main", "refs/remotes/origin/main")


def run_buf(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [buf(), *args], cwd=cwd, capture_output=True, text=True, timeout=90, check=False
    )


def git(*args: str) -> str | None:
    """The output of a git command in the repository, or None when it fails."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return None
    done = subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def main_commit() -> str | None:
    for ref in MAIN_REFS:
        found = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        if found:
            return found
    return None


def reference_commit() -> tuple[str, str] | None:
    """(commit, what it is) to check against, or None without a main branch."""
    main = main_commit()
    if main is None:
        return None
    head = git("rev-parse", "HEAD")
    if head == main:
        parent = git("rev-parse", "--verify", "--quiet", "HEAD^1^{commit}")
        return (parent, "main's previous commit") if parent else (main, "main (shallow clone)")
    base = git("merge-base", "HEAD", main)
    return (base, "where this branch left main") if base else (main, "main")


def export_protos(commit: str, target: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "protos"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    protos = target / "protos"
    if not (protos / "google").exists():
        shutil.copytree(PROTOS / "google", protos / "google")
    return protos


def test_lint_passes() -> None:
    result = run_buf("lint", cwd=PROTOS)
    assert result.returncode == 0, f"buf lint:\n{result.stdout}{result.stderr}"


def test_lint_catches_a_violation(tmp_path: Path) -> None:
    """The lint really runs: a message named in snake case is reported."""
    copy = tmp_path / "protos"
    shutil.copytree(PROTOS, copy, ignore=shutil.ignore_patterns("*.py", "*.pyi", "*.binpb"))
    proto = copy / "tradovate_gateway" / "v1" / "trading.proto"
    proto.write_text(proto.read_text() + "\nmessage bad_name {}\n")
    result = run_buf("lint", cwd=copy)
    assert result.returncode != 0
    assert "bad_name" in result.stdout


def test_no_breaking_change_against_main(tmp_path: Path) -> None:
    reference = reference_commit()
    if reference is None:
        pytest.skip("no main branch here (`git fetch origin main` to check breaking changes)")
    commit, what = reference
    against = export_protos(commit, tmp_path)
    result = run_buf("breaking", ".", "--against", str(against), cwd=PROTOS)
    assert result.returncode == 0, (
        f"breaking change against {what} ({commit[:12]}); add fields, never renumber or "
        f"remove:\n{result.stdout}{result.stderr}"
    )


def test_breaking_catches_a_renumbered_field(tmp_path: Path) -> None:
    """The check really compares: renumbering a field against today's tree fails."""
    changed = tmp_path / "changed"
    shutil.copytree(PROTOS, changed, ignore=shutil.ignore_patterns("*.py", "*.pyi", "*.binpb"))
    proto = changed / "tradovate_gateway" / "v1" / "trading.proto"
    text = proto.read_text()
    assert "  string value = 1;" in text
    proto.write_text(text.replace("  string value = 1;", "  string value = 99;", 1))
    result = run_buf("breaking", ".", "--against", str(PROTOS), cwd=changed)
    assert result.returncode != 0
    assert "Decimal" in result.stdout
