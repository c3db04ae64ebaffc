"""App settings (environment variables) that hold secrets, and redaction of those secrets.

Configs only *name* settings. Every value read through `get_setting` is remembered so that
`redact` can scrub it from any text that leaves the process (errors, logs, manifests), on top
of the patterns that mark credentials in connection strings, SAS tokens and function URLs.
"""

from __future__ import annotations

import os
import re
import threading

from pipeline.errors import SettingError  # re-exported

_lock = threading.Lock()
_known_secrets: set[str] = set()

# key=value pairs whose value is a credential: connection strings (AccountKey=...;), SAS (sig=...),
# Functions keys (code=...), and bearer tokens.
_PATTERNS = [
    re.compile(r"(?i)\b(AccountKey|SharedAccessSignature|SharedAccessKey|Password|Pwd)=([^;\s\"']+)"),
    re.compile(r"(?i)([?&](?:sig|code|token|access_token|api_key|apikey|key|se|sp|sv|skoid|sktid|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential)=)([^&\s\"']+)"),
    re.compile(r"(?i)\b(Bearer|Basic)\s+([A-Za-z0-9._~+/=-]+)"),
]



def get_setting(name: str) -> str:
    """The value of app setting `name`, which a config named: only settings the operator's policy
    allows (pipeline.policy) are read. The error names the setting, never a value."""
    from pipeline.policy import current

    current().check_setting(name)
    value = os.environ.get(name)
    if not value:
        raise SettingError(f"app setting {name!r} is not set (it is named in the config)")
    remember_secret(value)
    return value


def remember_secret(value: str) -> None:
    if len(value) >= 6:
        with _lock:
            _known_secrets.add(value)


def redact(text: str) -> str:
    """Scrub credentials from text meant for people: errors, logs, outputs."""
    with _lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, "***")
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)}=***", text)
    text = _PATTERNS[1].sub(lambda m: f"{m.group(1)}***", text)
    text = _PATTERNS[2].sub(lambda m: f"{m.group(1)} ***", text)
    return text
