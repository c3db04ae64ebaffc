"""The function app as Azure sees it, without a Functions host: azure.functions' own function
listing, and indexing by the real Python worker package (azure-functions-runtime), which checks
bindings against parameter names and types as the worker does when the host starts the app."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

# The worker's loader runs in a child process with the app folder on sys.path, as the host starts
# it. The protobuf message classes are normally handed to the worker by the host's proxy; here
# plain records stand in for them, with the enum values of FunctionRpc.proto (BindingInfo.Direction
# in=0/out=1/inout=2, DataType undefined=0/string=1/binary=2/stream=3). The indexing and
# validation logic is the worker's own.
INDEX = textwrap.dedent("""
    import json, sys, types
    from azure_functions_runtime import loader
    from azure_functions_runtime.bindings import meta
    from azure_functions_runtime.functions import Registry

    class Record:
        def __init__(self, **fields):
            self.__dict__.update(fields)

    class BindingInfo(Record):
        out, inout = 1, 2
        undefined, string, binary, stream = 0, 1, 2, 3
    setattr(BindingInfo, "in", 0)

    protos = types.SimpleNamespace(BindingInfo=BindingInfo, RpcFunctionMetadata=Record, RpcRetryOptions=Record)
    meta.load_binding_registry()
    indexed = loader.index_function_app(sys.argv[1])
    try:
        metadata, _ = loader.process_indexed_function(protos, Registry(), indexed, sys.argv[2])
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        raise SystemExit(0)
    print(json.dumps({"functions": [
        {"name": m.name, "script_file": m.script_file, "entry_point": m.entry_point,
         "bindings": {k: [b.type, b.direction] for k, b in m.bindings.items()},
         "raw_bindings": [json.loads(r) for r in m.raw_bindings]} for m in metadata]}))
""")


def index_with_worker(app_dir, script="function_app.py") -> dict:
    proc = subprocess.run([sys.executable, "-c", INDEX, str(app_dir / script), str(app_dir)], cwd=app_dir,
                          env={"PYTHONPATH": str(app_dir), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bindings_by_function(functions) -> dict:
    return {f.get_function_name(): {b["name"]: b for b in json.loads(f.get_function_json())["bindings"]}
            for f in functions}


def test_get_functions_lists_every_function_with_its_bindings():
    from azure_shim import build_app

    found = bindings_by_function(build_app().get_functions())
    assert set(found) == {"start_pipeline", "pipeline_status", "terminate_pipeline", "pipeline", "list", "copy",
                          "decompress", "transform", "purge_history"}
    for name, route, method in (("pipeline_status", "pipelines/{instance_id}", "GET"),
                                ("terminate_pipeline", "pipelines/{instance_id}/terminate", "POST")):
        req = found[name]["req"]  # the function key, as the starter: no system key in what Airflow polls
        assert (req["route"], req["methods"], req["authLevel"]) == (route, [method], "FUNCTION")
        assert found[name]["client"]["type"] == "durableClient"
    start = found["start_pipeline"]
    assert start["req"]["type"] == "httpTrigger" and start["req"]["route"] == "pipelines"
    assert start["req"]["methods"] == ["POST"] and start["req"]["authLevel"] == "FUNCTION"
    assert start["client"]["type"] == "durableClient" and start["client"]["direction"] == "IN"
    assert start["$return"]["type"] == "http" and start["$return"]["direction"] == "OUT"
    assert found["pipeline"] == {"context": {"name": "context", "type": "orchestrationTrigger", "direction": "IN"}}
    for activity in ("list", "copy", "decompress", "transform"):
        assert found[activity] == {"payload": {"name": "payload", "type": "activityTrigger", "direction": "IN"}}
    purge = found["purge_history"]
    assert purge["timer"]["type"] == "timerTrigger" and purge["timer"]["schedule"] == "0 30 2 * * *"
    assert purge["timer"]["runOnStartup"] is False
    assert purge["client"] == {"name": "client", "type": "durableClient", "direction": "IN"}


def test_the_real_worker_indexes_the_app():
    result = index_with_worker(ROOT)
    assert "error" not in result, result
    by_name = {f["name"]: f for f in result["functions"]}
    assert set(by_name) == {"start_pipeline", "pipeline_status", "terminate_pipeline", "pipeline", "list", "copy",
                            "decompress", "transform", "purge_history"}
    assert by_name["pipeline_status"]["bindings"] == by_name["start_pipeline"]["bindings"]
    assert by_name["purge_history"]["bindings"] == {"timer": ["timerTrigger", 0], "client": ["durableClient", 0]}
    assert by_name["start_pipeline"]["bindings"] == {"req": ["httpTrigger", 0], "client": ["durableClient", 0],
                                                     "$return": ["http", 1]}
    assert by_name["pipeline"]["bindings"] == {"context": ["orchestrationTrigger", 0]}
    assert by_name["transform"]["bindings"] == {"payload": ["activityTrigger", 0]}
    assert all(f["script_file"] == "function_app.py" for f in by_name.values())
    raw = {b["name"]: b for b in by_name["start_pipeline"]["raw_bindings"]}
    assert raw["req"]["route"] == "pipelines" and raw["req"]["authLevel"] == "FUNCTION"


def test_the_worker_rejects_a_binding_that_names_no_parameter(tmp_path):
    """What get_functions() lets through and the worker refuses: the check above can fail."""
    (tmp_path / "function_app.py").write_text(textwrap.dedent("""
        import azure.durable_functions as df
        app = df.DFApp()

        @app.function_name("transform")
        @app.activity_trigger(input_name="payload")
        def transform(unit: dict) -> dict:
            return unit
    """))
    from azure.durable_functions import DFApp  # noqa: F401  (the app imports; the listing passes)

    result = index_with_worker(tmp_path)
    assert "error" in result and "FunctionLoadError" in result["error"], result
    assert "payload" in result["error"] or "unit" in result["error"]


def test_host_json_lets_the_extension_refuse_to_restart_a_running_instance():
    """The starter checks an instance's status before starting it; between the two, another start could
    slip in. With NonRunningStates the Durable extension itself refuses to replace a running instance."""
    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["durableTask"]["overridableExistingInstanceStates"] == "NonRunningStates"
