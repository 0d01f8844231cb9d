"""A git repository of a test's own as the code a run deploys, so a second commit is real."""

from __future__ import annotations

import subprocess
from pathlib import Path

from runbook_lib import paths


def git(repo: Path, *args: str) -> str:
    """Run git in `repo`; return its output."""
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def commit(repo: Path, text: str) -> str:
    """Commit a change to the repository; return the new head."""
    (repo / "code.txt").write_text(text)
    git(repo, "add", "code.txt")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", text)
    return git(repo, "rev-parse", "HEAD")


def own_repo(tmp_path: Path, monkeypatch) -> Path:
    """Make an empty repository the project's source (runs record its head); warehouse under tmp."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    monkeypatch.setattr(paths, "SOURCE_ROOT", repo)
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    return repo
