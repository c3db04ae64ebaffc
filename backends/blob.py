"""Azure Blob Storage: the client, its defaults and naming, and what its errors mean, shared by
mounters/blob.py (sources) and writers/blob.py (destinations).

`connection` names an app setting holding either a connection string or an account URL
(``https://<account>.blob.core.windows.net``), the latter used with DefaultAzureCredential
restricted to production credentials (production_credential: managed identity in Azure). Clients
are cached per setting and value (a rotated connection string gets a new client): they pool
connections.

Timeouts: every request has a connect and a read timeout (a location's `timeout_s`), and the SDK
retries a few times with short waits, so a frozen storage endpoint fails the unit in bounded time
(about (RETRY_TOTAL + 1) x timeout_s + 14 s) as an I/O failure, which the executor may retry.
"""

from __future__ import annotations

import threading

from azure.core.exceptions import AzureError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient

from pipeline.errors import MissingSource
from pipeline.errors import SettingError, TransientError
from pipeline.settings import get_setting

DEFAULT_BLOCK = 4 << 20
CONNECT_TIMEOUT = 10  # seconds
READ_TIMEOUT = 60  # seconds per socket read (the default of a location's timeout_s)
RETRY_TOTAL = 3  # the SDK's own retries of one request, ~2 s, 4 s, 8 s apart (its default waits 15 s and up)
_clients: dict[tuple[str, str, float], BlobServiceClient] = {}
_lock = threading.Lock()


def describe(location: dict) -> str:
    return f"blob:{location['connection']}/{location['container']}/{location.get('path', '')}"


def service_client(setting: str, timeout_s: float = READ_TIMEOUT) -> BlobServiceClient:
    value = get_setting(setting)  # every time: the policy is checked, and a rotated value gets a new client
    options = {"connection_timeout": min(CONNECT_TIMEOUT, timeout_s), "read_timeout": timeout_s,
               "retry_total": RETRY_TOTAL, "initial_backoff": 2, "increment_base": 2}
    with _lock:
        client = _clients.get((setting, value, timeout_s))
        if client is None:
            if value.startswith("https://") or value.startswith("http://"):
                client = BlobServiceClient(account_url=value, credential=production_credential(setting), **options)
            else:
                try:
                    client = BlobServiceClient.from_connection_string(value, **options)
                except ValueError:
                    raise SettingError(f"app setting {setting!r} is not a valid storage connection string "
                                       "(fix the setting)") from None
            _clients[(setting, value, timeout_s)] = client
        return client


def production_credential(setting: str = "connection"):
    """DefaultAzureCredential limited to what exists where the app runs: environment (a service
    principal), workload identity and managed identity. The developer credentials (Azure CLI,
    Azure Developer CLI, PowerShell, VS Code, the shared token cache, the broker, a browser) are
    excluded, so the app never acts as whoever happens to be logged in on its machine."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise RuntimeError(f"app setting {setting!r} is an account URL, which needs the azure-identity package") from None
    return DefaultAzureCredential(
        exclude_cli_credential=True, exclude_developer_cli_credential=True, exclude_powershell_credential=True,
        exclude_visual_studio_code_credential=True, exclude_shared_token_cache_credential=True,
        exclude_interactive_browser_credential=True, exclude_broker_credential=True)


def container_client(location: dict) -> ContainerClient:
    return service_client(location["connection"], location.get("timeout_s", READ_TIMEOUT)).get_container_client(
        location["container"])


def error_code(exc: AzureError) -> str:
    return getattr(exc, "error_code", None) or type(exc).__name__


def translate(exc: AzureError, location: dict, what: str) -> Exception:
    """What a storage error means, as the exception to raise: a missing container or blob is
    permanent and named; a blob changed under a pinned read, and everything else, is I/O (the
    executor may retry). The message names the operation and the service's error code."""
    label, code = describe(location), error_code(exc)
    if isinstance(exc, ResourceNotFoundError) or code in ("ContainerNotFound", "BlobNotFound"):
        if code == "ContainerNotFound":
            return MissingSource(f"{label}: container {location['container']!r} does not exist "
                                   "(create it, or fix `container`)")
        return MissingSource(f"{label}: no such blob ({what})")
    if isinstance(exc, ResourceModifiedError) or code == "ConditionNotMet":
        return TransientError(f"{label}: {what} failed: the blob changed while it was read ({code}); "
                       "a retry reads the new version whole")
    if code == "InvalidBlockList":
        return TransientError(f"{label}: {what} failed: another writer committed this blob while this unit was writing "
                       "it, which discarded this unit's staged blocks (InvalidBlockList); a retry writes it again")
    first_line = (str(getattr(exc, "message", "") or exc).strip().splitlines() or [""])[0][:200]
    return TransientError(f"{label}: {what} failed: {code}" + (f": {first_line}" if first_line else ""))
