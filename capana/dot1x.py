"""802.1X authentications in a capture: EAPOL on the access port, RADIUS to the server.

The scan hands over only frames that are not TCP; a frame that is neither EAPOL nor UDP to or
from a RADIUS port costs an ethertype walk and a few byte comparisons.
"""

from __future__ import annotations

from capana.eapol import EapolTable
from capana.model import Handshake
from capana.packets import LINKTYPE_ETHERNET, decode_udp
from capana.radius import RADIUS_PORTS, RadiusTable

# High bytes of the RADIUS ports (1812 = 0x0714, 1645 = 0x066D): a one-byte pre-check per port.
RADIUS_PORT_HIGH_BYTES = bytes((0x07, 0x06))


class Dot1xTable:
    """The EAPOL and RADIUS tables of one capture, fed the frames TCP did not take."""

    def __init__(self, capture: str) -> None:
        self.eapol = EapolTable(capture)
        self.radius = RadiusTable(capture)

    def add(self, linktype: int, frame: bytes, timestamp: float, number: int = 0) -> None:
        """One frame; ``number``: its 1-based number in the capture (0: unknown)."""
        if linktype == LINKTYPE_ETHERNET and self.eapol.add(linktype, frame, timestamp, number):
            return
        datagram = decode_udp(linktype, frame, RADIUS_PORTS)
        if datagram is not None:
            self.radius.add(datagram, timestamp, number)

    def drain(self) -> list[Handshake]:
        """The handshakes finished since the last call."""
        done = self.eapol.completed + self.radius.completed
        self.eapol.completed.clear()
        self.radius.completed.clear()
        return done

    def finish(self) -> list[Handshake]:
        """End of capture: every authentication still open, and those not yet drained."""
        self.eapol.finish()
        self.radius.finish()
        return self.drain()

    @property
    def evicted(self) -> int:
        return self.eapol.evicted + self.radius.evicted
