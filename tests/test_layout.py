"""The package layout ARCHITECTURE.md describes: its parts, their layers, the direction of imports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from dfd.runtime.config import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "dfd"
ROW = re.compile(r"^\| *(\d+) *\| *`([a-z_]+)(?:/|\.py)` *\|", re.MULTILINE)


def architecture_layers() -> dict[str, int]:
    """{part: layer} from ARCHITECTURE.md's table (a part is a package or an entry module)."""
    text = (PROJECT_ROOT / "ARCHITECTURE.md").read_text()
    return {name: int(layer) for layer, name in ROW.findall(text)}


def dfd_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every `dfd.*` import in a file, TYPE_CHECKING blocks included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dfd."):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("dfd.")]
    return found


def test_the_table_names_every_part_of_the_tree_and_nothing_else():
    parts = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    parts |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert set(architecture_layers()) == parts


def test_the_top_level_holds_entry_points_and_packages_only():
    loose = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "train", "evaluate"}
    assert not loose, f"loose modules at the top of dfd/: {sorted(loose)}"


def test_no_command_is_split_into_an_entry_file_and_an_implementation_file():
    # a command package's __main__ is the entry; its work lives in the package's other modules
    for main in PACKAGE.glob("*/__main__.py"):
        assert not (PACKAGE / f"{main.parent.name}.py").exists()


def test_every_import_goes_down_the_layers():
    layers = architecture_layers()
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if part == "__init__":
            continue
        for line, module in dfd_imports(path):
            other = module.split(".")[1]
            if other != part and layers[other] >= layers[part]:
                upward.append(f"{path.relative_to(PROJECT_ROOT)}:{line} imports {module}")
    assert not upward, "imports that do not go down ARCHITECTURE.md's layers:\n" + "\n".join(upward)


def test_data_never_imports_the_models():
    for path in (PACKAGE / "data").rglob("*.py"):
        assert not [m for _, m in dfd_imports(path) if m.startswith("dfd.models")], path
