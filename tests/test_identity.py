"""A `connection` holding an account URL authenticates with DefaultAzureCredential restricted to
production credentials (backends/blob.py): managed identity, workload identity, environment; never
a developer's login. Real parts: a local managed-identity endpoint in the App Service/Functions
protocol (IDENTITY_ENDPOINT + IDENTITY_HEADER), and an `az` on PATH that hands out tokens and
notes each call, which an unrestricted DefaultAzureCredential does reach."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT, local_http_server

SCOPE = "https://storage.azure.com/.default"

CHILD = textwrap.dedent("""
    import json, sys
    from azure.identity import DefaultAzureCredential
    from backends.blob import production_credential, service_client

    if sys.argv[1] == "production":
        credential = service_client("RAW_STORAGE").credential  # what the app builds for an account URL
    else:
        credential = DefaultAzureCredential()  # the unrestricted default, for comparison
    names = [type(c).__name__ for c in credential.credentials]
    try:
        result = {"token": credential.get_token(sys.argv[2]).token}
    except Exception as exc:
        result = {"error": type(exc).__name__}
    print(json.dumps({"credentials": names, **result}))
""")


@pytest.fixture
def identity_endpoint():
    """A managed-identity endpoint on 127.0.0.1: answers with a token, or refuses (no identity)."""
    state = {"requests": [], "grant": True}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            state["requests"].append({"path": self.path, "header": self.headers.get("X-IDENTITY-HEADER")})
            ok = state["grant"]
            body = json.dumps({"access_token": "mi-token", "expires_on": "4070908800", "token_type": "Bearer",
                               "resource": "https://storage.azure.com"} if ok else
                              {"error": {"code": "BadRequest", "message": "No managed identity"}}).encode()
            self.send_response(200 if ok else 400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with local_http_server(Handler) as server:
        state["url"] = f"http://127.0.0.1:{server.server_address[1]}/msi/token"
        yield state


@pytest.fixture
def developer_login(tmp_path):
    """An `az` that is logged in: it prints a token and notes that it was asked."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "az-calls"
    bin_dir.mkdir()
    (bin_dir / "az").write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo "$@" >> {calls}
        echo '{{"accessToken": "cli-token", "expiresOn": "2099-01-01 00:00:00.000000", "expires_on": 4070908800, "tokenType": "Bearer", "subscription": "s", "tenant": "t"}}'
    """))
    (bin_dir / "az").chmod(0o755)
    return bin_dir, calls


def credential_in_child(kind: str, identity_endpoint, developer_login, tmp_path) -> dict:
    bin_dir, _ = developer_login
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
    env.update(PYTHONPATH=str(ROOT), PATH=f"{bin_dir}:{env['PATH']}", HOME=str(tmp_path),
               RAW_STORAGE="https://acct.blob.core.windows.net",
               # The Functions host's managed identity: never the cloud metadata address from a test.
               IDENTITY_ENDPOINT=identity_endpoint["url"], IDENTITY_HEADER="the-host-header")
    proc = subprocess.run([sys.executable, "-c", CHILD, kind, SCOPE], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_an_account_url_uses_the_managed_identity(identity_endpoint, developer_login, tmp_path):
    result = credential_in_child("production", identity_endpoint, developer_login, tmp_path)
    assert result["token"] == "mi-token"
    (request,) = identity_endpoint["requests"]
    assert request["header"] == "the-host-header" and "resource=https://storage.azure.com" in request["path"]
    assert not developer_login[1].exists()


def test_developer_credentials_are_never_tried(identity_endpoint, developer_login, tmp_path):
    identity_endpoint["grant"] = False  # no managed identity here: a developer's machine
    result = credential_in_child("production", identity_endpoint, developer_login, tmp_path)
    assert "token" not in result and result["error"] == "ClientAuthenticationError"
    assert not developer_login[1].exists()  # `az` was never asked
    assert set(result["credentials"]) <= {"EnvironmentCredential", "WorkloadIdentityCredential",
                                          "FailedDACCredential", "ManagedIdentityCredential"}
    # The unrestricted default on the same machine runs as the developer: what the restriction prevents.
    unrestricted = credential_in_child("default", identity_endpoint, developer_login, tmp_path)
    assert unrestricted["token"] == "cli-token" and developer_login[1].exists()
