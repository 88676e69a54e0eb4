"""Which TCP ports carry which Cisco TLS service (one place for the port numbers)."""

from __future__ import annotations

SERVICE_BY_PORT: dict[int, str] = {
    2443: "sccp-tls",
    5061: "sip-tls",
    3804: "capf",
    2445: "tvs",
    443: "https",
    8443: "https",
    9443: "https",
    9444: "https",
}

# Any other port is TLS only when its first bytes carry a ClientHello.
GENERIC_SERVICE = "tls"


def service_for(server_port: int) -> str:
    """The service name of a TLS connection to ``server_port``."""
    return SERVICE_BY_PORT.get(server_port, GENERIC_SERVICE)
