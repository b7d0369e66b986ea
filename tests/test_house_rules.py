"""The repository's size limits: no Python file over 500 lines, and in the library packages
(trainloop, simplified_tf, linear_tf) no function over 60 lines, counted from its `def` line to
its last line (decorators excluded, docstring included). A file or function past its limit is
split along a responsibility, not trimmed."""

import ast
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60
LIBRARY = ("trainloop", "simplified_tf", "linear_tf")


def _python_files() -> list[str]:
    """Tracked .py files, and new ones git does not ignore (outside git: every .py file here)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        out = [
            str(p.relative_to(ROOT))
            for p in ROOT.rglob("*.py")
            if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
        ]
    return sorted(p for p in set(out) if (ROOT / p).is_file())


def _functions(path: str):
    tree = ast.parse((ROOT / path).read_text(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def test_no_python_file_is_over_the_line_limit():
    lengths = {p: len((ROOT / p).read_text().splitlines()) for p in _python_files()}
    assert lengths, "found no Python files"
    too_long = [f"{p}: {n} lines" for p, n in lengths.items() if n > MAX_FILE_LINES]
    assert not too_long, f"Files over {MAX_FILE_LINES} lines: " + "; ".join(too_long)


def test_no_library_function_is_over_the_line_limit():
    library = [p for p in _python_files() if p.split("/")[0] in LIBRARY]
    assert library, "found none of the library packages"
    too_long = [
        f"{path}:{line} {name} ({n} lines)"
        for path in library
        for name, line, n in _functions(path)
        if n > MAX_FUNCTION_LINES
    ]
    assert not too_long, f"Functions over {MAX_FUNCTION_LINES} lines: " + "; ".join(too_long)


def test_every_library_folder_is_a_package_the_wheel_includes():
    """pyproject finds packages by `__init__.py`: a library folder of modules without one would be
    left out of a (non-editable) install."""
    folders = {str(pathlib.Path(p).parent) for p in _python_files() if p.startswith(LIBRARY)}
    missing = sorted(f for f in folders if not (ROOT / f / "__init__.py").is_file())
    assert not missing, f"Library folders without __init__.py: {missing}"
