"""The project's own code never unpickles what it loads: `torch.load` only with `weights_only=True`.

A checkpoint or tensor file is data, but plain `torch.load` runs whatever a pickle inside it says;
`weights_only=True` restricts it to tensors and plain containers. The scan reads the source (the
AST, so comments and strings do not count) of every package and the tests, and is itself checked
on snippets that must be caught.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("components", "flows", "benchmarks", "tests")


def _is_true(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_loads(source: str, filename: str = "<string>") -> list[str]:
    """`file:line` of each call that may unpickle: torch.load without weights_only=True, pickle.load(s),
    and np.load with allow_pickle=True. `from torch import load` and aliases of torch are followed."""
    tree = ast.parse(source, filename=filename)
    torch_names, load_names, pickle_names = {"torch"}, set(), {"pickle"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "torch":
                    torch_names.add(alias.asname or "torch")
                if alias.name in ("pickle", "dill", "cloudpickle"):
                    pickle_names.add(alias.asname or alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module == "torch":
            load_names |= {alias.asname or alias.name for alias in node.names if alias.name == "load"}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        owner, name = None, None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner, name = func.value.id, func.attr
        elif isinstance(func, ast.Name):
            name = func.id
        torch_load = (owner in torch_names and name == "load") or (owner is None and name in load_names)
        if torch_load and not _is_true(keywords.get("weights_only", ast.Constant(None))):
            found.append(f"{filename}:{node.lineno}: torch.load without weights_only=True")
        if owner in pickle_names and name in ("load", "loads"):
            found.append(f"{filename}:{node.lineno}: {owner}.{name}")
        if (
            name == "load"
            and owner in ("np", "numpy")
            and _is_true(keywords.get("allow_pickle", ast.Constant(0)))
        ):
            found.append(f"{filename}:{node.lineno}: np.load with allow_pickle=True")
    return found


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\ntorch.load('x.pt')",
        "import torch\ntorch.load('x.pt', map_location='cpu', weights_only=False)",
        "import torch as T\nT.load(path)",
        "from torch import load\nload(path)",
        "from torch import load as restore\nrestore(path, weights_only=None)",
        "import torch\nflag = True\ntorch.load(path, weights_only=flag)",  # only a literal True counts
        "import pickle\npickle.loads(data)",
        "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
    ],
)
def test_the_scan_catches_unsafe_loads(snippet: str) -> None:
    assert unsafe_loads(snippet), snippet


def test_the_scan_lets_safe_loads_through() -> None:
    safe = (
        "import torch, numpy as np, json\n"
        "torch.load('x.pt', map_location='cpu', weights_only=True)\n"
        "np.load('a.npy')\nnp.load('a.npy', allow_pickle=False)\njson.load(f)\nmodel.load_state_dict(s)\n"
    )
    assert unsafe_loads(safe) == []


def test_no_unsafe_load_in_the_project() -> None:
    files = [path for folder in SCANNED for path in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 50  # the scan really sees the project
    calls = sum(path.read_text().count("torch.load(") for path in files)
    assert calls >= 3  # ... including the places that do load checkpoints
    found = [hit for path in files for hit in unsafe_loads(path.read_text(), str(path.relative_to(ROOT)))]
    # This file's snippets are strings, not calls: the AST does not see them.
    assert found == [], "\n".join(found)
