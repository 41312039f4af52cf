"""Nothing read from data or a model is ever run: the package calls no eval, exec, compile,
pickle loads, unsafe YAML or shell. Arithmetic in answers goes through the AST walker in
tasks/answers.py (safe_arithmetic), which refuses anything but numbers and + - * / ( )."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tadistill"
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_ATTRIBUTES = {("pickle", "loads"), ("pickle", "load"), ("marshal", "loads"), ("yaml", "load"),
                        ("yaml", "unsafe_load"), ("os", "system"), ("os", "popen")}


def _offences(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
        func = node.func
        if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
            found.append(f"{where} calls {func.id}()")
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and \
                (func.value.id, func.attr) in FORBIDDEN_ATTRIBUTES:
            found.append(f"{where} calls {func.value.id}.{func.attr}()")
        if any(k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value for k in node.keywords):
            found.append(f"{where} starts a shell")
    return found


def test_the_package_never_runs_code_it_reads():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30
    assert [offence for path in files for offence in _offences(path)] == []
