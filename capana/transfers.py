"""What the two file-transfer readers share: which names are a phone's boot files, and the
bounded buffer a file's body is kept in.

The HTTP reader (:mod:`capana.http_files`) and the TFTP reader (:mod:`capana.tftp`) both hand
out :class:`~capana.model.FileTransfer`; :mod:`capana.trustfiles` reads what the body holds.
"""

from __future__ import annotations

from capana.domain import PHONE_FILE_SUFFIXES

# Bound: the bytes kept of one file's body. Trust lists are refused by phones over 64 KB and
# configurations are smaller; a larger body is counted in ``size`` but kept only this far.
MAX_FILE_BYTES = 256 * 1024


def is_phone_file(name: str) -> bool:
    """Is ``name`` a trust list, a signed file or a configuration a phone fetches at boot?"""
    return name.lower().split("?", 1)[0].endswith(PHONE_FILE_SUFFIXES)


class BodyBuffer:
    """A file's bytes as they arrive: the first MAX_FILE_BYTES kept, every byte counted."""

    __slots__ = ("kept", "size")

    def __init__(self) -> None:
        self.kept = bytearray()
        self.size = 0

    def add(self, data: bytes) -> None:
        self.size += len(data)
        room = MAX_FILE_BYTES - len(self.kept)
        if room > 0:
            self.kept += data[:room]

    @property
    def truncated(self) -> bool:
        return self.size > len(self.kept)
