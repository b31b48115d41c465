"""No shell strings anywhere: commands are argument lists, never built text.

Scans every Python file of the project (not the virtualenv) with the AST,
so a comment or a string that merely mentions these names does not count.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".venv", ".uv", "node_modules", "data", ".git"}
SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output"}
FORBIDDEN_CALLS = {
    ("os", "system"),
    ("os", "popen"),
    ("subprocess", "getoutput"),
    ("subprocess", "getstatusoutput"),
}


def project_files():
    for path in ROOT.rglob("*.py"):
        if not SKIP & set(path.relative_to(ROOT).parts):
            yield path


def problems(path: Path) -> list[str]:
    found = []
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (
                isinstance(keyword.value, ast.Constant) and keyword.value.value is False
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: shell= other than False")
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            pair = (func.value.id, func.attr)
            if pair in FORBIDDEN_CALLS:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {'.'.join(pair)}()")
            if func.value.id == "subprocess" and func.attr in SUBPROCESS_CALLS and node.args:
                first = node.args[0]
                if isinstance(first, ast.JoinedStr | ast.BinOp | ast.Constant):
                    found.append(
                        f"{path.relative_to(ROOT)}:{node.lineno}: command given as a string"
                    )
    return found


def test_scanner_catches_the_bad_patterns(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os, subprocess\n"
        "subprocess.run(f'sbatch {x}', shell=True)\n"
        "os.system('ls')\n"
        "subprocess.check_output('squeue ' + user)\n"
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert len(problems(bad)) == 4
    finally:
        ROOT = saved


def test_no_shell_strings_in_the_project():
    files = list(project_files())
    assert len(files) > 20  # the scan really looked at the code
    found = [problem for path in files for problem in problems(path)]
    assert found == []
