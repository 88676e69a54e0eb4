"""capana's scapy extension: the contrib modules that ``conf.exts.load("capana")`` registers.

Installed as ``capana.dissectors`` (this folder, mapped in pyproject.toml). scapy imports the
``capana`` package and calls its ``scapy_ext(ext)``, which calls the one here. Registering only
tells scapy where a module lives: nothing is bound or
changed until the user runs ``load_contrib("cisco_phone_tls")`` (which binds the Cisco TLS
ports) or ``load_contrib("cisco_trust_files")`` (which binds nothing: trust lists are files).
Importing this package imports no scapy layer at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scapy.config import ScapyExt

# The contrib modules in this folder, by the name ``load_contrib`` takes.
CONTRIB_MODULES = ("cisco_phone_tls", "cisco_trust_files", "cisco_capf_tvs")


def scapy_ext(ext: ScapyExt) -> None:
    """Register the contrib modules; ``default=False`` keeps them unloaded until asked for."""
    from importlib.metadata import version

    from scapy.config import ScapyExt

    ext.config("capana", version("capana"))
    folder = Path(__file__).resolve().parent
    for name in CONTRIB_MODULES:
        ext.register(name, ScapyExt.MODE.CONTRIB, folder / f"{name}.py", default=False)
