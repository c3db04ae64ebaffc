"""Run by an Airflow venv's python: the start task's response filter keeps only the instance id of
the app's 202 answer (whose management URLs carry a system key as code=), so XCom, the UI and every
log line that shows an XCom value never see a key. Writes {"filtered": ...} as JSON to argv[2]."""

import importlib.util
import json
import sys

import requests

spec = importlib.util.spec_from_file_location("sourcemart_dags", sys.argv[1])
factory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(factory)

key = "sYsKeY-masking-check-0123456789"
base = "https://app.example.net/runtime/webhooks/durabletask/instances/x"
response = requests.models.Response()
response.status_code = 202
response._content = json.dumps({"id": "x", "statusQueryGetUri": f"{base}?taskHub=h&connection=Storage&code={key}",
                                "terminatePostUri": f"{base}/terminate?reason={{text}}&code={key}"}).encode()
with open(sys.argv[2], "w") as f:
    json.dump({"filtered": factory.started_instance(response)}, f)
