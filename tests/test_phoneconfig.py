"""capana.phoneconfig: CUCM's namespace-less XML read tolerantly, entities never expanded."""

from __future__ import annotations

import pytest

from capana.phoneconfig import parse_config

# The shape of a CUCM 12.5 SEP<MAC>.cnf.xml (undeclared xsi/axl prefixes, uuid attributes).
CUCM = b"""<?xml version="1.0" encoding="UTF-8"?>
<device  xsi:type="axl:XIPPhone" ctiid="548" uuid="{7fe8bd6e-3d42-4ad5-1d1b-cfcb53bdc717}">
<fullConfig>true</fullConfig>
<devicePool  uuid="{c858bf9a-9a77-4961-9b76-ff209c886452}">
<callManagerGroup><members><member  priority="0"><callManager>
<name>64.73.32.133</name><ports><sipPort>5060</sipPort></ports>
</callManager></member></members></callManagerGroup>
</devicePool>
<TVS>
<members>
<member  priority="0">
<port>2445</port>
<address>64.73.32.133</address>
</member>
</members>
</TVS>
<sipProfile><transportLayerProtocol>9</transportLayerProtocol></sipProfile>
<deviceSecurityMode>1</deviceSecurityMode>
<transportLayerProtocol>4</transportLayerProtocol>
<capfAuthMode>0</capfAuthMode>
<capfList>
<capf>
<phonePort>3804</phonePort>
<processNodeName></processNodeName>
</capf>
</capfList>
<certHash></certHash>
<encrConfig>false</encrConfig>
</device>
"""


def test_a_cucm_file() -> None:
    config = parse_config(CUCM)
    assert config.problems == ()
    assert config.root == "device"
    assert (config.device_security_mode, config.security_mode) == (1, "non-secure")
    assert (config.transport_layer_protocol, config.transport) == (4, "tcp+udp")  # not sipProfile's
    assert [(m.address, m.port) for m in config.tvs] == [("64.73.32.133", 2445)]
    assert [(m.address, m.port) for m in config.capf] == [(None, 3804)]
    assert (config.capf_auth_mode, config.cert_hash, config.encrypted) == (0, None, False)


@pytest.mark.parametrize(
    "document",
    [
        b'<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<device><certHash>&b;</certHash></device>",
        b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><device><certHash>&x;</certHash></device>',
        b'<!DOCTYPE device SYSTEM "http://example.com/device.dtd"><device/>',
    ],
)
def test_no_dtd_no_entity(document: bytes) -> None:
    config = parse_config(document)
    assert config.problems == ("xml-dtd-refused",)
    assert config.cert_hash is None


def test_damage_keeps_what_came_before() -> None:
    cut = CUCM[: CUCM.index(b"<capfAuthMode>")] + b"<capfAuthMode>0</capf"
    config = parse_config(cut)
    assert config.problems == ("xml-malformed",)
    assert (config.device_security_mode, config.transport_layer_protocol) == (1, 4)
    assert config.capf_auth_mode is None
    assert parse_config(b"<device>&undeclared;</device>").problems == ("xml-malformed",)


def test_odd_values() -> None:
    config = parse_config(
        b"<device><deviceSecurityMode>two</deviceSecurityMode>"
        b"<transportLayerProtocol>7</transportLayerProtocol><encrConfig>TRUE</encrConfig>"
        b"<certHash>6ec2e8329e4a971b64a5c3009661a6b6</certHash></device>"
    )
    assert config.problems == ("bad-number",)
    assert (config.device_security_mode, config.transport) == (None, "transport_7")
    assert config.encrypted and config.cert_hash == "6ec2e8329e4a971b64a5c3009661a6b6"
    other = parse_config(b"<Default><deviceSecurityMode>3</deviceSecurityMode></Default>")
    assert other.problems == ("not-a-device-config",)
    assert parse_config(b"").problems == ("xml-malformed",)


@pytest.mark.parametrize("encoding", ["ATF-8", "UTF-16"])
def test_a_declared_encoding_expat_cannot_read_is_malformed_not_raised(encoding: str) -> None:
    """Found by hypothesis: a damaged XML declaration made expat raise LookupError/ValueError."""
    config = parse_config(f'<?xml version="1.0" encoding="{encoding}"?><device/>'.encode())
    assert config.problems == ("xml-malformed",)
