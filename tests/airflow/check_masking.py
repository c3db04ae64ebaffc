"""Run by an Airflow venv's python: the start task's response filter registers the status URL's
code= with Airflow's own secrets masker (Airflow redacts task logs with it; dag.test() on Airflow 3
prints logs in-process without that step, so the registration is checked here directly).
Writes {"filtered": ..., "redacted": ...} as JSON to argv[2]."""

import importlib.util
import json
import sys

import requests

try:
    from airflow.sdk.log import redact  # Airflow 3
except ImportError:
    from airflow.utils.log.secrets_masker import redact  # Airflow 2

spec = importlib.util.spec_from_file_location("sourcemart_dags", sys.argv[1])
factory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(factory)

key = "sYsKeY-masking-check-0123456789"
response = requests.models.Response()
response.status_code = 202
response._content = json.dumps({"id": "x", "statusQueryGetUri":
                                f"https://app.example.net/runtime/webhooks/durabletask/instances/x?taskHub=h&connection=Storage&code={key}"}).encode()
filtered = factory.status_path(response)
line = f"Poking: {filtered}"
with open(sys.argv[2], "w") as f:
    json.dump({"filtered": filtered, "redacted": redact(line)}, f)
