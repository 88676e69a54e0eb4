"""A phone's configuration file (SEP<MAC>.cnf.xml): the security settings the cluster gave it.

Real CUCM files open with ``<device xsi:type="axl:XIPPhone" ctiid="...">`` and declare neither
prefix, so a namespace-aware parser refuses them. This reads with expat in plain (namespace-free)
mode, refuses any DTD (so no entity can be declared or expanded), and keeps every value read
before a syntax error. Bytes in, :class:`PhoneConfig` out; never raises.

Element names: DOMAIN.md; a CUCM 12.5-generated SEP<MAC>.cnf.xml quoted in a public provisioning
server (``<TVS><members><member priority="0"><port>2445</port><address>...``,
``<capfList><capf><phonePort>3804</phonePort><processNodeName>...``); usecallmanager.nz's
certutils ``enccnf`` (keeps ``capfAuthMode`` and ``capfList``, writes ``certHash`` and
``encrConfig``).
"""

from __future__ import annotations

from xml.parsers import expat

from capana.domain import SECURITY_MODES, TRANSPORT_LAYER_PROTOCOLS
from capana.model import ConfigProblem, PhoneConfig, ServiceMember

# The direct children of <device> read as numbers or text.
_NUMBERS = ("deviceSecurityMode", "transportLayerProtocol", "capfAuthMode")
_TEXTS = ("certHash", "encrConfig")
# Server lists: parent element, member element, address and port elements inside a member.
_TVS = ("TVS", "member", "address", "port")
_CAPF = ("capfList", "capf", "processNodeName", "phonePort")


class _DtdRefused(Exception):
    """The document declares a DTD: refused before any entity can be declared."""


class _Reader:
    """expat callbacks that keep the element path and collect the values wanted."""

    def __init__(self) -> None:
        self.path: list[str] = []
        self.text: list[str] = []
        self.root: str | None = None
        self.values: dict[str, str] = {}
        self.members: dict[str, list[dict[str, str]]] = {_TVS[0]: [], _CAPF[0]: []}

    def start(self, name: str, attributes: dict[str, str]) -> None:
        if self.root is None:
            self.root = name
        self.path.append(name)
        self.text = []
        for parent, member, _address, _port in (_TVS, _CAPF):
            if name == member and parent in self.path[:-1]:
                self.members[parent].append({})

    def end(self, name: str) -> None:
        text = "".join(self.text).strip()
        self.text = []
        if len(self.path) == 2 and name in (*_NUMBERS, *_TEXTS):
            self.values.setdefault(name, text)
        for parent, member, address, port in (_TVS, _CAPF):
            inside = self.path[-2:-1] == [member] and parent in self.path
            if inside and name in (address, port) and self.members[parent]:
                self.members[parent][-1].setdefault(name, text)
        self.path.pop()

    def data(self, text: str) -> None:
        self.text.append(text)


def parse_config(xml: bytes) -> PhoneConfig:
    """The security settings in a configuration file's bytes; never raises."""
    reader = _Reader()
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.data
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    problems: list[ConfigProblem] = []
    try:
        parser.Parse(xml, True)
    except _DtdRefused:
        problems.append("xml-dtd-refused")
    except expat.ExpatError:
        problems.append("xml-malformed")
    if reader.root is not None and reader.root != "device":
        problems.append("not-a-device-config")
    numbers = {name: _number(reader.values.get(name), problems) for name in _NUMBERS}
    mode, transport = numbers["deviceSecurityMode"], numbers["transportLayerProtocol"]
    return PhoneConfig(
        root=reader.root,
        device_security_mode=numbers["deviceSecurityMode"],
        transport_layer_protocol=numbers["transportLayerProtocol"],
        tvs=_members(reader.members[_TVS[0]], _TVS, problems),
        capf_auth_mode=numbers["capfAuthMode"],
        capf=_members(reader.members[_CAPF[0]], _CAPF, problems),
        cert_hash=reader.values.get("certHash") or None,
        encrypted=reader.values.get("encrConfig", "").lower() == "true",
        problems=tuple(dict.fromkeys(problems)),
        security_mode=None if mode is None else SECURITY_MODES.get(mode, f"mode_{mode}"),
        transport=None
        if transport is None
        else TRANSPORT_LAYER_PROTOCOLS.get(transport, f"transport_{transport}"),
    )


def _refuse_dtd(*_args: object) -> None:
    raise _DtdRefused


def _number(text: str | None, problems: list[ConfigProblem]) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        problems.append("bad-number")
        return None


def _members(
    found: list[dict[str, str]], names: tuple[str, str, str, str], problems: list[ConfigProblem]
) -> tuple[ServiceMember, ...]:
    """The members that name an address or a port (CUCM often writes an empty CAPF entry)."""
    _parent, _member, address, port = names
    members = [
        ServiceMember(member.get(address) or None, _number(member.get(port), problems))
        for member in found
    ]
    return tuple(m for m in members if m.address is not None or m.port is not None)
