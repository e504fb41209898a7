"""A spare run tree per repository, checked out ahead of time, so that a run starts without writing every file.

Writing a large repository's files is most of a run's start (each new file is a metadata write on disk),
and the next run's files are nearly the last one's. So once a run has its tree, Mull checks out another in
the background under ``spares/<repo_id>``, with a private index beside it. The next run claims it with one
rename (atomic across workers sharing the data dir), brings it to its own starting commit with
``git read-tree -m -u`` (writing only the files that differ) and moves its tree into the run directory.
No agent sees a spare before it is claimed, so it is as clean as a fresh checkout; a spare that is missing a
part or fails to update is discarded and the run checks out afresh.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from worker.trees.git_process import GitError, git
from worker.trees.run_tree import remove_run_dir

TREE, INDEX, COMMIT = "tree", "index", "commit"


async def claim(spares: Path, repo_id: int, mirror: Path, base: str, into: Path) -> bool:
    """Move the repository's spare tree, brought to commit ``base``, to ``into``; False when there was none
    (or it could not be used), and then ``into`` does not exist."""
    claimed = spares / f"claimed-{repo_id}-{uuid.uuid4().hex}"
    try:
        os.rename(spares / str(repo_id), claimed)
    except OSError:
        return False
    try:
        made_from = (claimed / COMMIT).read_text().strip()
        if made_from != base:
            await git("read-tree", "-m", "-u", made_from, base, git_dir=mirror, work_tree=claimed / TREE,
                      env={"GIT_INDEX_FILE": str(claimed / INDEX)})
        os.rename(claimed / TREE, into)
        return True
    except (OSError, GitError):
        return False
    finally:
        remove_run_dir(claimed)


async def refill(spares: Path, repo_id: int, mirror: Path, base: str) -> None:
    """Check out ``base`` as the repository's spare tree, unless it has one. Failures only mean no spare."""
    if (spares / str(repo_id)).exists():
        return
    spares.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f"building-{repo_id}-", dir=spares))
    try:
        (building / TREE).mkdir()
        index = {"GIT_INDEX_FILE": str(building / INDEX)}
        await git("read-tree", base, git_dir=mirror, work_tree=building / TREE, env=index)
        # -u records the files' stat data in the index, so a later update compares without reading them.
        await git("checkout-index", "--all", "--force", "-u", git_dir=mirror, work_tree=building / TREE, env=index)
        (building / COMMIT).write_text(base + "\n")
        os.rename(building, spares / str(repo_id))  # refused when another worker's spare got there first
    except (OSError, GitError):
        pass
    finally:
        if building.exists():
            remove_run_dir(building)
