"""The core stays cloud-agnostic: no Azure Functions imports in mounters/, writers/, processors/,
pipeline/, local_runner/; only the blob modules import azure.storage.blob, and a local run never
loads it. Only azure_shim/ (and the function_app.py entry point) import the Functions packages."""

import ast
import subprocess
import sys

from tests.conftest import ROOT

CORE = ["backends", "mounters", "writers", "processors", "pipeline", "local_runner"]


def imported_modules(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_core_never_imports_azure_functions_and_only_blob_modules_import_the_storage_sdk():
    checked = 0
    for package in CORE:
        for path in (ROOT / package).rglob("*.py"):
            mods = imported_modules(path)
            rel = path.relative_to(ROOT).as_posix()
            assert not any(m.startswith(("azure.functions", "azure.durable_functions")) for m in mods), rel
            if any(m.startswith("azure.") for m in mods):
                assert rel in ("backends/blob.py", "mounters/blob.py", "writers/blob.py"), f"{rel} imports the Azure SDK"
            checked += 1
    assert checked > 20


def test_only_the_shim_imports_the_functions_packages():
    importers = set()
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith((".venv", "node_modules/", "tests/", ".python_packages/", "dist/", "native/build/")):
            continue
        if any(m.startswith(("azure.functions", "azure.durable_functions")) for m in imported_modules(path)):
            importers.add(rel)
    assert "azure_shim/orchestrator.py" in importers and "azure_shim/http_start.py" in importers
    assert all(r == "function_app.py" or r.startswith("azure_shim/") for r in importers), sorted(importers)


def test_local_run_does_not_load_the_blob_sdk(tmp_path):
    code = ("import sys, runpy; sys.argv = ['local_runner', 'run', 'samples/acme/events.json', '-q'];\n"
            "try:\n    runpy.run_module('local_runner', run_name='__main__')\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "print(sorted(m for m in sys.modules if m.startswith('azure')))")
    import shutil
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
