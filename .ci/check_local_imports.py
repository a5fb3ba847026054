"""Fail on a function-local import of a clipstudio module that does not say why it is deferred.

Imports go at the top of a module. An import inside a function (or a class body) hides the real
dependency graph and, in this project, once hid three import cycles. It is allowed for a clipstudio
module only with a ``# deferred: <reason>`` comment, on the import or on its own line above a block
of imports (for example: keeps torch out of a command that never needs it). Deferred third-party imports (torch, transformers, sklearn,
peft, ...) are fine and not checked here.

    python .ci/check_local_imports.py [PATH ...]     # default: clipstudio/
Exit code 1 and one ``file:line: importer -> imported`` line per offending import.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "clipstudio"
MARKER = "# deferred:"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_modules(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        return [node.module or ""]
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return [".".join(base + ([node.module] if node.module else []))]


def _nested_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports below a def or a class (module-level ``if``/``try`` blocks are still module level)."""

    def walk(node: ast.AST, nested: bool) -> Iterator[ast.Import | ast.ImportFrom]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and nested:
                yield child
            inner = nested or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
            )
            yield from walk(child, inner)

    yield from walk(tree, False)


def _is_deferred(lines: list[str], node: ast.stmt, import_lines: set[int]) -> bool:
    """A ``# deferred:`` comment on the import itself, or above the block of imports it starts."""
    first, last = node.lineno, node.end_lineno or node.lineno
    if any(MARKER in lines[n - 1] for n in range(first, last + 1)):
        return True
    n = first - 1
    while n >= 1 and (n in import_lines or not lines[n - 1].strip() or lines[n - 1].lstrip().startswith("#")):
        if MARKER in lines[n - 1] and lines[n - 1].lstrip().startswith("#"):
            return True
        n -= 1
    return False


def local_imports(root: Path, paths: list[Path]) -> list[tuple[str, int, str, str, bool]]:
    """(file, line, importer, imported, has_deferred_comment) for every function-local clipstudio import."""
    found = []
    for path in paths:
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            source = file.read_text(encoding="utf-8")
            lines = source.splitlines()
            importer = module_name(file.resolve(), root)
            is_package = file.name == "__init__.py"
            nested = list(_nested_imports(ast.parse(source, filename=str(file))))
            import_lines = {
                n for node in nested for n in range(node.lineno, (node.end_lineno or node.lineno) + 1)
            }
            for node in nested:
                for imported in _imported_modules(node, importer, is_package):
                    if imported == PACKAGE or imported.startswith(PACKAGE + "."):
                        ok = _is_deferred(lines, node, import_lines)
                        found.append((str(file.relative_to(root)), node.lineno, importer, imported, ok))
    return found


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parents[1]
    paths = [Path(a).resolve() for a in argv] or [root / PACKAGE]
    offending = [row for row in local_imports(root, paths) if not row[4]]
    for file, line, importer, imported, _ok in offending:
        print(f"{file}:{line}: {importer} -> {imported}")
    if offending:
        print(
            f"{len(offending)} function-local import(s) of clipstudio modules; move them to the top of the "
            f"module, or say why they are deferred with a '{MARKER} <reason>' comment on the line.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
