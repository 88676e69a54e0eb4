"""The trust-file layers used the way a scapy user does, in a fresh interpreter per check."""

from __future__ import annotations

import json
from pathlib import Path

from test_scapy_plugin import installed, scapy_run

__all__ = ["installed"]  # the fixture, shared with the TLS extension's tests


def test_loading_changes_no_binding(installed: None, tmp_path: Path) -> None:
    script = """
    import json, sys

    def bindings():
        return {layer.__name__: sorted(repr(sorted(fields.items())) + guess.__name__
                for fields, guess in layer.payload_guess) for layer in list(conf.layers)}

    before = bindings()
    import capana.dissectors.cisco_trust_files
    after_import = bindings()
    conf.exts.load("capana")
    registered = "scapy.contrib.cisco_trust_files" in conf.exts.all_specs
    load_contrib("cisco_trust_files")
    after_load = bindings()
    changed = [name for name in before if before[name] != after_load.get(name)]
    new = [name for name in after_import if name not in before and after_import[name]]
    print(json.dumps([registered, before == {k: after_import[k] for k in before}, changed, new]))
    """
    registered, same_after_import, changed, bound_new = json.loads(scapy_run(script, cwd=tmp_path))
    assert registered
    assert same_after_import
    assert changed == []
    assert bound_new == []  # the file layers are reached by class, never by a binding


def test_itl_shows_in_a_scapy_session(installed: None, shared_data: Path, tmp_path: Path) -> None:
    script = """
    import sys
    conf.exts.load("capana")
    load_contrib("cisco_trust_files")
    itl = ITLFile(open(sys.argv[1], "rb").read())
    itl.show()
    print([record.role for record in itl.records])
    print(type(CiscoSignedFile(open(sys.argv[1], "rb").read()).payload).__name__)
    """
    output = scapy_run(script, str(shared_data / "itl" / "ITLFile.tlv"), cwd=tmp_path)
    assert "###[ ITL file ]###" in output
    assert "signer_name" in output and "CN=SAST,O=SAST,OU=SAST" in output
    assert "timestamp = 2025-12-30 17:25:42 UTC" in output
    assert "role      = APP-SERVER" in output
    assert output.splitlines()[-2:] == ["[0, 1, 1, 7, 7]", "TrustListRecords"]
