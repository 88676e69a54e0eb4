"""Constants from the Cisco phone-certificate domain, one place each (see DOMAIN.md).

A plain module of data: no functions with behaviour beyond trivial lookups, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

# Issuers of MICs and SUDIs: a certificate they issue claims to be a manufacturer certificate.
# CUCM's default CA list holds the first five; the rest are other Cisco manufacturing issuers.
MANUFACTURING_CA_NAMES: frozenset[str] = frozenset(
    {
        "Cisco Manufacturing CA",
        "Cisco Manufacturing CA SHA2",
        "CAP-RTP-001",
        "CAP-RTP-002",
        "ACT2 SUDI CA",
        "ACT2 ECC SUDI CA",
        "Cisco Manufacturing CA III",
        "High Assurance SUDI CA",
        "Cisco Manufacturing HA SUDI CA",
    }
)

_MANUFACTURING_FOLDED = frozenset(name.casefold() for name in MANUFACTURING_CA_NAMES)


def is_manufacturing_ca(common_name: str | None) -> bool:
    """Does this CN name a Cisco manufacturing CA (whatever the letter case)? A claim only."""
    return common_name is not None and common_name.casefold() in _MANUFACTURING_FOLDED


# Roots above the manufacturing CAs (also in CUCM's default CA list).
CISCO_ROOT_CA_NAMES: frozenset[str] = frozenset(
    {
        "Cisco Root CA 2048",
        "Cisco Root CA M1",
        "Cisco Root CA M2",
        "Cisco Root CA 2099",
        "Cisco ECC Root CA",
        "Cisco Basic Assurance Root CA 2099",
    }
)

# A CAPF certificate's common name: "CAPF-" and 8 hex digits (e.g. CAPF-0992727f).
CAPF_CN_PATTERN: re.Pattern[str] = re.compile(r"CAPF-[0-9a-f]{8}", re.IGNORECASE)

# A phone's common name: "CP-8861-SEP2C3124C9F8E1" (88xx and later) or "SEP2C3124C9F8E1".
PHONE_CN_PATTERN: re.Pattern[str] = re.compile(
    r"(?:(?P<model>.+)-)?(?P<device>SEP[0-9a-f]{12})", re.IGNORECASE
)

# "PID:CP-8861 SN:FCH2133E8B9" in the subject serialNumber of MICs, LSCs and SUDIs.
PID_PATTERN: re.Pattern[str] = re.compile(r"PID:(?P<model>\S+)")

# Trust store names a user may give (`--trust NAME=PATH`); a port number is also accepted.
TRUST_STORE_NAMES: frozenset[str] = frozenset({"callmanager", "capf", "ise", "asa"})
# Each store as its administrator knows it (what advice asks to fix).
TRUST_STORE_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "callmanager": "CallManager-trust",
        "capf": "CAPF-trust",
        "ise": "the ISE trusted certificates",
        "asa": "the ASA trustpoints",
    }
)
# The kind of server each store belongs to (what advice speaks of).
SERVER_BY_STORE: Mapping[str, str] = MappingProxyType(
    {"callmanager": "CUCM", "capf": "CUCM", "ise": "ISE", "asa": "ASA"}
)
# How a CA certificate ({what}) gets into each store, and what to restart for the change to take.
TRUST_STORE_UPDATE: Mapping[str, str] = MappingProxyType(
    {
        "callmanager": "upload {what} to CallManager-trust (Cisco Unified OS Administration > "
        "Security > Certificate Management), then restart the Cisco CallManager and Cisco TFTP "
        "services on every node that runs them",
        "capf": "upload {what} to CAPF-trust (Cisco Unified OS Administration > Security > "
        "Certificate Management), then restart the Cisco Certificate Authority Proxy Function "
        "service",
        "ise": "import {what} in ISE (Administration > System > Certificates > Trusted "
        "Certificates) with 'Trust for client authentication and Syslog' checked",
        "asa": "install {what} on the ASA as a trustpoint (crypto ca trustpoint, crypto ca "
        "authenticate) that the tunnel group's certificate authentication uses",
    }
)
# Where the TLS versions and cipher suites a server accepts are set.
TLS_SETTINGS_ADVICE: Mapping[str, str] = MappingProxyType(
    {
        "CUCM": "On CUCM compare the TLS minimum version (CLI: show tls min-version, set tls "
        "min-version) and the 'TLS Ciphers' enterprise parameter with what the phone offered; "
        "a phone that offers only old versions or ciphers needs newer firmware.",
        "ISE": "On ISE check Administration > System > Settings > Security Settings (allowed "
        "TLS versions, weak ciphers) against what the phone offered; upgrade old phone "
        "firmware.",
        "ASA": "On the ASA check 'ssl server-version' and 'ssl cipher' against what the phone "
        "offered; upgrade old phone firmware.",
    }
)

# Stores whose CAs issue LSCs when CAPF runs in online/offline CA mode (None: the default store).
LSC_ISSUING_STORES: frozenset[str | None] = frozenset({"capf", "callmanager", None})

# Which server's trust store judges the phone's certificate, by service and by port.
TRUST_STORE_BY_SERVICE: Mapping[str, str] = MappingProxyType(
    {
        "sccp-tls": "callmanager",
        "sip-tls": "callmanager",
        "capf": "capf",
        "eap-tls": "ise",
        "peap": "ise",
        "eap-ttls": "ise",
        "teap": "ise",
    }
)
TRUST_STORE_BY_PORT: Mapping[int, str] = MappingProxyType(
    {
        2443: "callmanager",
        5061: "callmanager",
        3804: "capf",
        443: "asa",
    }
)


# TLS services by the server's TCP port. Any other port is TLS only when its first bytes carry a
# ClientHello; such connections are the generic service.
SERVICE_BY_PORT: Mapping[int, str] = MappingProxyType(
    {
        2443: "sccp-tls",
        5061: "sip-tls",
        3804: "capf",
        2445: "tvs",
        443: "https",
        8443: "https",
        9443: "https",
        9444: "https",
    }
)
GENERIC_TLS_SERVICE = "tls"
# Phone signalling in clear (a non-secure device profile), by the server's TCP port.
CLEARTEXT_SERVICE_BY_PORT: Mapping[int, str] = MappingProxyType({2000: "sccp", 5060: "sip"})
# The ports only Cisco's services use (443 is everyone's HTTPS).
CISCO_TLS_PORTS: tuple[int, ...] = tuple(port for port in SERVICE_BY_PORT if port != 443)


def service_for(server_port: int) -> str:
    """The service name of a TLS connection to ``server_port``."""
    return SERVICE_BY_PORT.get(server_port, GENERIC_TLS_SERVICE)


# Services a phone opens to CUCM, where a certificate request is expected of a secure profile.
PHONE_SERVICES: frozenset[str] = frozenset({"sccp-tls", "sip-tls", "capf", "tvs"})
# Everything only a phone speaks to CUCM: a client of these is a phone, whatever it presented.
PHONE_SIGNALLING: frozenset[str] = PHONE_SERVICES | frozenset(CLEARTEXT_SERVICE_BY_PORT.values())

# Alerts by which a server says it refused the client's certificate.
CERTIFICATE_ALERTS: frozenset[str] = frozenset(
    {
        "unknown_ca",
        "bad_certificate",
        "certificate_unknown",
        "certificate_expired",
        "unsupported_certificate",
        "certificate_revoked",
        "access_denied",
        "decrypt_error",
    }
)

# The services a phone registers to CallManager over, TLS or clear (SCCP 2443/2000, SIP 5061/5060).
CALLMANAGER_TLS_SERVICES: frozenset[str] = frozenset({"sccp-tls", "sip-tls"})

# The cluster's TFTP service, whose files (trust lists, configurations) a phone fetches at boot:
# TFTP on UDP 69, the same files over HTTP on TCP 6970 (6971/6972 are the HTTPS variants,
# encrypted, not read).
TFTP_PORT = 69
TFTP_HTTP_PORT = 6970
# A request for a name ending so is a phone's boot file, on whatever port it travels.
PHONE_FILE_SUFFIXES: tuple[str, ...] = (".tlv", ".sgn", ".cnf.xml")
# "CTLSEP2C3124C9F8E1.tlv", "ITLSEP….tlv", "SEP….cnf.xml.sgn": the phone a file is for.
PHONE_FILE_DEVICE_PATTERN: re.Pattern[str] = re.compile(r"SEP[0-9A-F]{12}", re.IGNORECASE)
# Phones refuse a trust list over 64 KB (about 39 certificates).
MAX_TRUST_LIST_SIZE = 64 * 1024
# Trust list record roles (the ``function`` element of a .tlv record).
TRUST_LIST_ROLES: Mapping[int, str] = MappingProxyType(
    {0: "SAST", 1: "CCM", 2: "CCM+TFTP", 3: "TFTP", 4: "CAPF", 7: "APP-SERVER", 21: "TVS"}
)
# Records whose certificate may sign a trust list, in the order tried (the SAST, or ITLRecovery).
TRUST_LIST_SIGNER_ROLES: tuple[str, ...] = ("SAST", "TFTP", "CCM+TFTP")
# Records whose certificate may sign a configuration file (the TFTP service's).
CONFIG_SIGNER_ROLES: frozenset[str] = frozenset({"TFTP", "CCM+TFTP"})
# Records naming CallManager: the certificate a phone accepts on SCCP-TLS and SIP-TLS.
CALLMANAGER_ROLES: frozenset[str] = frozenset({"CCM", "CCM+TFTP"})
# deviceSecurityMode in a phone's configuration.
SECURITY_MODES: Mapping[int, str] = MappingProxyType(
    {1: "non-secure", 2: "authenticated", 3: "encrypted"}
)
# transportLayerProtocol in a phone's configuration (values seen).
TRANSPORT_LAYER_PROTOCOLS: Mapping[int, str] = MappingProxyType(
    {1: "tcp", 2: "udp", 3: "tls", 4: "tcp+udp"}
)

# RSA keys shorter than this are worth a note (CAPF's "Key Size" offers 1024 to 4096).
MIN_RSA_BITS = 2048
