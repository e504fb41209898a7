"""What running a project's code leaves in its tree, which no Mull commit may take.

An agent runs the tests, and tests write caches: Python's bytecode, test runners' and linters' caches,
virtualenvs. A repository's ``.gitignore`` usually lists them, but not always, and a patch or
pull request full of ``.pyc`` files is useless (a binary diff ``git apply`` cannot even take without
``--binary``). So Mull ignores these whatever the repository says (``BUILD_CACHES``, written into each
mirror's ``info/exclude``), and a repository that does track bytecode keeps its committed copies as they
are: any run of the code rewrites them, so a change to them is never the agent's work (``is_bytecode``).
"""

from __future__ import annotations

import fnmatch

# gitignore patterns: "name/" matches a directory of that name at any depth, the others file names.
# Only names nothing else goes by: ``node_modules/`` is not here, since JavaScript tools keep test fixtures in
# directories of that name, and a repository without it in .gitignore may mean it.
BUILD_CACHES = ("__pycache__/", "*.py[co]", ".pytest_cache/", ".mypy_cache/", ".ruff_cache/", ".hypothesis/",
                ".tox/", ".nox/", ".venv/", ".coverage", ".coverage.*")

_BYTECODE_DIR = b"__pycache__"
_BYTECODE_NAMES = ("*.pyc", "*.pyo")


def is_bytecode(path: bytes) -> bool:
    """Whether ``path`` (slash-separated, relative to the tree) is compiled Python: in a ``__pycache__``
    directory, or named ``*.pyc`` or ``*.pyo``."""
    *folders, name = path.split(b"/")
    if _BYTECODE_DIR in folders:
        return True
    text = name.decode("utf-8", errors="replace")
    return any(fnmatch.fnmatchcase(text, pattern) for pattern in _BYTECODE_NAMES)
