"""The operator's policy: what a run request may reach. Set by app settings (environment variables),
never by a request; checked here, in one place, and called from every entry point (the Azure
starter and `serve` through pipeline.request, the local `run`) and again inside each activity
before any I/O, so a hand-edited activity payload cannot get around it.

    PIPELINE_ALLOWED_SETTINGS   settings a config may name (`connection`, `headers_from_env`),
                                comma-separated. Empty or unset: none. Never allowed, whatever the
                                list says: the host's own (AzureWebJobs*, WEBSITE_*, FUNCTIONS_*, ...).
    PIPELINE_HEADER_ORIGINS     where a setting may be sent as an HTTP header: comma-separated
                                SETTING=origin pairs (repeat a setting for more origins), e.g.
                                ACME_API_TOKEN=https://api.acme.example. A header setting with no
                                origin is refused: a token is sent only where the operator said.
    PIPELINE_LOCAL_ROOTS        folders that local locations must resolve under (symlinks resolved),
                                separated by os.pathsep. Unset: none in the Functions app and `serve`
                                (blob and http only); the current directory for the local CLI `run`.
    PIPELINE_PLAIN_HTTP_HOSTS   host or host:port that http sources may reach over plain http
                                (everything else must be https), comma-separated.
    PIPELINE_PRIVATE_HOSTS      host or host:port allowed to resolve to loopback, private,
                                link-local, CGNAT, multicast or unspecified addresses (refused for
                                every other host, checked on the address actually connected to).
    PIPELINE_ORIGIN_OVERRIDES   where an origin a config names is really reached: comma-separated
                                origin=origin pairs, e.g. https://api.acme.example=http://127.0.0.1:8701
                                (a mirror, a staging API, the laptop demo's local API). Every check
                                above applies to the origin actually reached: its scheme and
                                addresses, and the header settings bound to it.

/proc, /sys and /dev, device files and FIFOs are never read, whatever the roots say.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pipeline.errors import PolicyError  # re-exported: raised by every check here

# Settings of the Functions host and its identity: a request never names them, whatever the list says.
_HOST_SETTING_PREFIXES = ("AZUREWEBJOBS", "WEBSITE_", "FUNCTIONS_", "APPLICATIONINSIGHTS_", "IDENTITY_", "MSI_",
                          "PIPELINE_", "LOCAL_HOST_", "AZURE_CLIENT_", "AZURE_TENANT_", "AZURE_FEDERATED_",
                          "AZURE_USERNAME", "AZURE_PASSWORD", "CONTAINER_")
_NEVER_READ = ("/proc", "/sys", "/dev")
# Addresses that are not the public internet but are not flagged by ipaddress's is_global alone.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _split(value: str | None, sep: str = ",") -> list[str]:
    return [v.strip() for v in (value or "").split(sep) if v.strip()]


def origin_of(url: str) -> str:
    """scheme://host:port with the default port made explicit, lower-cased: what origins compare as."""
    p = urlsplit(url)
    scheme, host = p.scheme.lower(), (p.hostname or "").lower()
    try:
        port = p.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        raise PolicyError(f"{url!r} has an invalid port") from None
    return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"


def _host_rule(entry: str) -> tuple[str, int | None]:
    """'host' (any port) or 'host:port'; IPv6 literals in brackets: '[::1]:8080'."""
    p = urlsplit("//" + entry.strip())
    return (p.hostname or "").lower(), p.port


def refused_address(ip: str) -> str | None:
    """Why an address is not on the public internet (loopback, private, ...), or None if it is."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = addr.ipv4_mapped or addr.sixtofour or (addr.teredo[1] if addr.teredo else None)
        if embedded is None and addr in _NAT64:
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if embedded is not None:
            why = refused_address(str(embedded))
            return f"{why} (embedded in {addr})" if why else None
    for kind in ("loopback", "link_local", "multicast", "unspecified", "private", "reserved"):
        if getattr(addr, f"is_{kind}"):
            return f"a {kind.replace('_', '-')} address"
    if not addr.is_global:  # CGNAT 100.64/10, benchmarking, documentation, ...
        return "not a public address"
    return None


def is_never_read(real: str) -> bool:
    return any(real == p or real.startswith(p + "/") for p in _NEVER_READ)


@dataclass(frozen=True)
class Policy:
    allowed_settings: frozenset[str] = frozenset()
    header_origins: dict[str, frozenset[str]] = field(default_factory=dict)
    local_roots: tuple[str, ...] = ()  # resolved (realpath) folders
    plain_http_hosts: frozenset[tuple[str, int | None]] = frozenset()
    private_hosts: frozenset[tuple[str, int | None]] = frozenset()
    local_roots_source: str = "PIPELINE_LOCAL_ROOTS"  # how the roots were set, for error messages
    origin_overrides: dict[str, str] = field(default_factory=dict)  # origin -> scheme://host:port reached instead

    def reached_url(self, url: str) -> str:
        """The URL actually fetched for `url`: its origin replaced as PIPELINE_ORIGIN_OVERRIDES says.
        Every network check is made on this URL, never on the one the config names."""
        target = self.origin_overrides.get(origin_of(url)) if urlsplit(url).hostname else None
        if target is None:
            return url
        p = urlsplit(url)
        return target + p.path + (f"?{p.query}" if p.query else "")

    # -- settings ------------------------------------------------------------------------------
    def check_setting(self, name: str) -> None:
        if name.upper().startswith(_HOST_SETTING_PREFIXES):
            raise PolicyError(f"app setting {name!r} belongs to the host and is never available to a request")
        if name not in self.allowed_settings:
            raise PolicyError(f"app setting {name!r} is not allowed: the operator lists the settings a request "
                              "may name in PIPELINE_ALLOWED_SETTINGS")

    def check_header_setting(self, name: str, url: str) -> None:
        self.check_setting(name)
        origin = origin_of(url)
        allowed = self.header_origins.get(name, frozenset())
        if origin not in allowed:
            where = f"only to {', '.join(sorted(allowed))}" if allowed else "to no origin"
            raise PolicyError(f"app setting {name!r} may be sent {where}, not to {origin}: the operator binds "
                              f"header settings to origins in PIPELINE_HEADER_ORIGINS ({name}=<origin>)")

    # -- network -------------------------------------------------------------------------------
    @staticmethod
    def _listed(rules, host: str, port: int | None) -> bool:
        host = host.lower().strip("[]")
        return any(h == host and (p is None or p == port) for h, p in rules)

    def check_url(self, url: str) -> None:
        """A URL an http source may fetch (first, or after a redirect): scheme, and an IP literal's range."""
        p = urlsplit(url)
        scheme, host = p.scheme.lower(), p.hostname or ""
        if scheme not in ("http", "https") or not host:
            raise PolicyError(f"{scheme or '(no scheme)'}:// URLs are not fetched; http sources are https "
                              "(plain http only for hosts in PIPELINE_PLAIN_HTTP_HOSTS)")
        port = int(origin_of(url).rsplit(":", 1)[1])
        if scheme == "http" and not self._listed(self.plain_http_hosts, host, port):
            raise PolicyError(f"plain http to {host}:{port} is not allowed: use https, or the operator lists the "
                              "host in PIPELINE_PLAIN_HTTP_HOSTS")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return  # a name: checked on the address it resolves to, when connecting
        self.check_address(host, port, host)

    def check_address(self, host: str, port: int | None, ip: str) -> None:
        """The address a connection to host:port is about to use (or used)."""
        why = refused_address(ip)
        if why and not self._listed(self.private_hosts, host, port):
            raise PolicyError(f"{host}:{port} resolves to {ip}, {why}; refused (the operator allows such hosts "
                              "in PIPELINE_PRIVATE_HOSTS)")

    # -- local files ---------------------------------------------------------------------------
    def local_path(self, path: str) -> str:
        """The resolved path (symlinks followed) if it lies under a local root; PolicyError otherwise.
        Works for paths that do not exist yet (a destination): the existing part is resolved."""
        if "\0" in path:
            raise PolicyError("a local path must not contain NUL")
        real = os.path.realpath(path)
        if is_never_read(real):
            raise PolicyError(f"local path {path!r} resolves to {real!r}; /proc, /sys and /dev are never used")
        for root in self.local_roots:
            if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
                return real
        if not self.local_roots:
            raise PolicyError(f"local path {path!r}: local files are not allowed here (the operator lists "
                              f"folders in {self.local_roots_source})")
        raise PolicyError(f"local path {path!r} resolves to {real!r}, outside the allowed folders "
                          f"({os.pathsep.join(self.local_roots)}; set by {self.local_roots_source})")

    def open_local(self, path: str, buffering: int):
        """Open a local file for reading: under a root, not a symlink swapped in after the check, a regular file."""
        real = self.local_path(path)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(real, flags)  # O_NONBLOCK: opening a FIFO must not wait for a writer
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PolicyError(f"local path {path!r} is not a regular file (devices and FIFOs are never read)")
            os.set_blocking(fd, True)
            return open(fd, "rb", buffering=buffering)
        except BaseException:
            os.close(fd)
            raise

    # -- a whole location, before any I/O ------------------------------------------------------
    def check_location(self, location: dict) -> None:
        kind = location.get("type")
        if kind == "blob":
            self.check_setting(location["connection"])
        elif kind == "http":
            url = self.reached_url(location["url"])
            self.check_url(url)
            for setting in location.get("headers_from_env", {}).values():
                self.check_header_setting(setting, url)
        elif kind == "local":
            from mounters.base import select

            sel = select(location["path"])
            self.local_path(sel.exact if sel.exact is not None else (sel.base or "."))
        else:
            raise PolicyError(f"unknown location type {kind!r}")


_DEFAULT_LOCAL_ROOTS: list[str] = []
_DEFAULT_LOCAL_ROOTS_SOURCE = ["PIPELINE_LOCAL_ROOTS"]


def use_local_roots_default(roots: list[str], source: str) -> None:
    """An entry point's default when PIPELINE_LOCAL_ROOTS is unset (the local CLI: the current folder)."""
    _DEFAULT_LOCAL_ROOTS[:] = roots
    _DEFAULT_LOCAL_ROOTS_SOURCE[0] = source


def from_env(environ=None) -> Policy:
    env = os.environ if environ is None else environ
    origins: dict[str, set[str]] = {}
    for pair in _split(env.get("PIPELINE_HEADER_ORIGINS")):
        name, sep, origin = pair.partition("=")
        if not sep or not urlsplit(origin.strip()).hostname:
            raise PolicyError(f"PIPELINE_HEADER_ORIGINS: {pair!r} is not SETTING=scheme://host[:port]")
        origins.setdefault(name.strip(), set()).add(origin_of(origin.strip()))
    overrides: dict[str, str] = {}
    for pair in _split(env.get("PIPELINE_ORIGIN_OVERRIDES")):
        source, sep, target = (x.strip() for x in pair.partition("="))
        if not sep or any(urlsplit(u).scheme not in ("http", "https") or not urlsplit(u).hostname
                          or urlsplit(u).path.strip("/") or urlsplit(u).query for u in (source, target)):
            raise PolicyError(f"PIPELINE_ORIGIN_OVERRIDES: {pair!r} is not scheme://host[:port]=scheme://host[:port]")
        target_origin = origin_of(target)
        overrides[origin_of(source)] = target_origin.removesuffix(":80") if target_origin.startswith("http:") \
            else target_origin.removesuffix(":443")
    if "PIPELINE_LOCAL_ROOTS" in env:
        roots, source = _split(env["PIPELINE_LOCAL_ROOTS"], os.pathsep), "PIPELINE_LOCAL_ROOTS"
    else:
        roots, source = list(_DEFAULT_LOCAL_ROOTS), _DEFAULT_LOCAL_ROOTS_SOURCE[0]
    return Policy(
        allowed_settings=frozenset(_split(env.get("PIPELINE_ALLOWED_SETTINGS"))),
        header_origins={k: frozenset(v) for k, v in origins.items()},
        local_roots=tuple(os.path.realpath(r) for r in roots),
        plain_http_hosts=frozenset(_host_rule(h) for h in _split(env.get("PIPELINE_PLAIN_HTTP_HOSTS"))),
        private_hosts=frozenset(_host_rule(h) for h in _split(env.get("PIPELINE_PRIVATE_HOSTS"))),
        local_roots_source=source,
        origin_overrides=overrides,
    )


def current() -> Policy:
    """The policy in force now (read from the environment each time: cheap, and never stale)."""
    return from_env()


# -- configs and activity payloads ---------------------------------------------------------------
_LOCATION_KEYS = ("src", "dest", "rejects")


def config_errors(config: dict, policy: Policy | None = None, prefix: str = "") -> list[str]:
    """Every place a (validated) config reaches beyond the policy, as 'json.path: message'."""
    policy = policy or current()
    errors = []
    for i, processor in enumerate(config.get("processors", [])):
        errors += processor_errors(processor, policy, f"{prefix}processors[{i}].")
    return errors


def processor_errors(processor: dict, policy: Policy, prefix: str = "") -> list[str]:
    errors = []
    cfg = processor.get("processor_config", {})
    for key in _LOCATION_KEYS:
        location = cfg.get(key)
        if location is None:
            continue
        try:
            policy.check_location(location)
        except PolicyError as exc:
            errors.append(f"{prefix}processor_config.{key}: {exc}")
    return errors


def check_processor(processor: dict, policy: Policy | None = None) -> None:
    """Inside an activity, before any I/O: the processor's locations are within the policy."""
    errors = processor_errors(processor, policy or current())
    if errors:
        raise PolicyError("; ".join(errors))
