"""components/ stays pure: no module in it imports prefect or mlflow (flows/ adds those)."""

from __future__ import annotations

import ast
from pathlib import Path

import components

BANNED = ("prefect", "mlflow")
COMPONENTS = Path(components.__file__).resolve().parent


def banned_imports(source: str, filename: str = "<string>") -> list[str]:
    """`file:line: import` for every import of a banned package (or a sub-module of one) in `source`."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name.split(".")[0] in BANNED:
                found.append(f"{filename}:{node.lineno}: imports {name}")
    return found


def test_no_component_imports_prefect_or_mlflow() -> None:
    files = sorted(COMPONENTS.rglob("*.py"))
    assert len(files) >= 10  # the walk really found the package (config, data, ..., models/)
    assert COMPONENTS / "models" / "conv_ae.py" in files
    problems = [p for path in files for p in banned_imports(path.read_text(), str(path))]
    assert not problems, "components/ must not import prefect or mlflow:\n" + "\n".join(problems)


def test_checker_catches_every_import_form() -> None:
    source = "\n".join(
        [
            "import os",
            "import mlflow",
            "from mlflow.tracking import MlflowClient",
            "import numpy as np, prefect.flows",
            "def later():",
            "    from prefect import flow",
            "import mlflowish",
            "from .mlflow import x",
        ]
    )
    problems = banned_imports(source, "bad.py")
    assert problems == [
        "bad.py:2: imports mlflow",
        "bad.py:3: imports mlflow.tracking",
        "bad.py:4: imports prefect.flows",
        "bad.py:6: imports prefect",
    ]
