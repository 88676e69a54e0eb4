"""The verdict oracle: ``openssl verify -attime T -partial_chain -auth_level 0`` as a status.

``-partial_chain``: like CUCM, any store certificate is an anchor. ``-auth_level 0``: OpenSSL 3's
default level 1 refuses SHA-1 signatures ("CA signature digest algorithm too weak"), which real
MICs carry and CUCM accepts. With CRLs: ``-crl_check_all -use_deltas`` (every certificate of the
chain, the anchor included, needs a CRL from its issuer, so the tests give one for each).

``openssl verify`` prints ``error N at D depth lookup`` for each error; it goes on after some
(expired, invalid CA, pathLen, unknown critical extension, stale CRL) and stops at the others.
:data:`OPENSSL_STATUS` turns those codes into capana's status; the worst one wins, in the order
of :data:`PRECEDENCE`, which is capana's own (a path that is revoked and invalid is revoked).
The tests hold capana's status to be the oracle's (one of two where OpenSSL cannot tell them
apart: see INVALID_CERTIFICATE).
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from capana.certificates import load_pem_or_der


def _openssl_major() -> str | None:
    if shutil.which("openssl") is None:
        return None
    version = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=False)
    return version.stdout.split()[1].split(".")[0] if version.stdout else None


needs_openssl = pytest.mark.skipif(
    _openssl_major() != "3", reason="needs the openssl 3 command (its error codes are mapped)"
)

# OpenSSL 3's X509_V_ERR_* code -> capana's status (the numbers changed in 3.0: INVALID_CA was
# 24). One table; a code not in it fails the test that meets it, so that no verdict is compared
# by accident.
OPENSSL_STATUS: dict[int, str] = {
    0: "trusted",  # X509_V_OK
    # -- no path: nothing in the store signed it --------------------------------------------------
    2: "untrusted",  # UNABLE_TO_GET_ISSUER_CERT
    4: "untrusted",  # UNABLE_TO_DECRYPT_CERT_SIGNATURE
    6: "untrusted",  # UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY
    7: "untrusted",  # CERT_SIGNATURE_FAILURE
    18: "untrusted",  # DEPTH_ZERO_SELF_SIGNED_CERT
    19: "untrusted",  # SELF_SIGNED_CERT_IN_CHAIN
    20: "untrusted",  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY (see INVALID_CERTIFICATE below)
    21: "untrusted",  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    22: "untrusted",  # CERT_CHAIN_TOO_LONG
    24: "untrusted",  # NO_ISSUER_PUBLIC_KEY
    29: "untrusted",  # SUBJECT_ISSUER_MISMATCH
    30: "untrusted",  # AKID_SKID_MISMATCH
    31: "untrusted",  # AKID_ISSUER_SERIAL_MISMATCH
    55: "untrusted",  # PATH_LOOP
    76: "untrusted",  # UNSUPPORTED_SIGNATURE_ALGORITHM
    77: "untrusted",  # SIGNATURE_ALGORITHM_MISMATCH
    # -- revoked ---------------------------------------------------------------------------------
    23: "revoked",  # CERT_REVOKED
    # -- a path that breaks the rules ------------------------------------------------------------
    1: "invalid",  # UNSPECIFIED (name constraints: too many names to check)
    25: "invalid",  # PATH_LENGTH_EXCEEDED
    32: "invalid",  # KEYUSAGE_NO_CERTSIGN
    34: "invalid",  # UNHANDLED_CRITICAL_EXTENSION
    37: "invalid",  # INVALID_NON_CA
    41: "invalid",  # INVALID_EXTENSION
    47: "invalid",  # PERMITTED_VIOLATION
    48: "invalid",  # EXCLUDED_VIOLATION
    49: "invalid",  # SUBTREE_MINMAX
    51: "invalid",  # UNSUPPORTED_CONSTRAINT_TYPE
    52: "invalid",  # UNSUPPORTED_CONSTRAINT_SYNTAX
    53: "invalid",  # UNSUPPORTED_NAME_SYNTAX
    79: "invalid",  # INVALID_CA
    94: "invalid",  # EC_KEY_EXPLICIT_PARAMS
    # -- a CRL that cannot be used: capana says invalid, with the reason --------------------------
    # The tests give a CRL for every certificate, so OpenSSL finds none only when it refuses the
    # one given (its authorityKeyIdentifier names another key, a scope it does not read).
    3: "invalid",  # UNABLE_TO_GET_CRL
    5: "invalid",  # UNABLE_TO_DECRYPT_CRL_SIGNATURE
    8: "invalid",  # CRL_SIGNATURE_FAILURE
    11: "invalid",  # CRL_NOT_YET_VALID
    12: "invalid",  # CRL_HAS_EXPIRED
    33: "invalid",  # UNABLE_TO_GET_CRL_ISSUER
    35: "invalid",  # KEYUSAGE_NO_CRL_SIGN
    36: "invalid",  # UNHANDLED_CRITICAL_CRL_EXTENSION
    44: "invalid",  # DIFFERENT_CRL_SCOPE
    54: "invalid",  # CRL_PATH_VALIDATION_ERROR
    # -- dates at -attime --------------------------------------------------------------------------
    9: "not_yet_valid",  # CERT_NOT_YET_VALID
    10: "expired",  # CERT_HAS_EXPIRED
}
# OpenSSL 3 will not use a certificate it flags invalid while caching its extensions (empty
# keyUsage, a standard extension twice or undecodable, negative pathLen) as issuer or subject:
# it says "unable to get local issuer certificate" and its error queue "invalid certificate".
# Whether a path would exist without that flag, it does not say: capana's ``invalid`` (the path
# found, with the defect named) and ``untrusted`` (no path anyway) are both its verdict then.
INVALID_CERTIFICATE = "invalid certificate"
PRECEDENCE = ("untrusted", "revoked", "invalid", "not_yet_valid", "expired", "trusted")
_ERROR = re.compile(r"^error (\d+) at (\d+) depth lookup", re.M)


def openssl_statuses(
    store: bytes,
    chain: bytes,
    at: datetime,
    tmp: Path,
    *,
    crls: Sequence[bytes] = (),
) -> frozenset[str]:
    """The oracle's verdict on the leaf (first PEM of ``chain``) at ``at``, as capana's status:
    one, or ``{"invalid", "untrusted"}`` when OpenSSL cannot tell (INVALID_CERTIFICATE).

    ``crls``: PEM or DER CRLs; given any, every certificate of the chain is checked.
    """
    output = _verify(store, chain, at, tmp, crls)
    codes = {int(code) for code, _ in _ERROR.findall(output)}
    if not codes:
        assert ": OK" in output, output
        return frozenset({"trusted"})
    unknown = codes - OPENSSL_STATUS.keys()
    assert not unknown, f"OpenSSL code(s) {sorted(unknown)} not in OPENSSL_STATUS:\n{output}"
    status = min((OPENSSL_STATUS[code] for code in codes), key=PRECEDENCE.index)
    if codes & {2, 20, 21} and INVALID_CERTIFICATE in output:
        return frozenset({"invalid", "untrusted"})
    return frozenset({status})


def openssl_accepts(store: bytes, chain: bytes, at: datetime, tmp: Path) -> bool:
    """Does ``openssl verify`` accept the leaf (first PEM of ``chain``) at ``at``?"""
    return openssl_statuses(store, chain, at, tmp) == {"trusted"}


def _verify(store: bytes, chain: bytes, at: datetime, tmp: Path, crls: Sequence[bytes]) -> str:
    leaf, *rest = load_pem_or_der(chain)
    (tmp / "store.pem").write_bytes(store)
    (tmp / "leaf.pem").write_bytes(pem(leaf.der))
    command = ["openssl", "verify", "-auth_level", "0", "-partial_chain"]
    command += ["-attime", str(int(at.timestamp())), "-CAfile", str(tmp / "store.pem")]
    if rest:
        (tmp / "chain.pem").write_bytes(b"".join(pem(c.der) for c in rest))
        command += ["-untrusted", str(tmp / "chain.pem")]
    for number, crl in enumerate(crls):
        path = tmp / f"crl{number}.pem"
        path.write_bytes(crl if crl.startswith(b"-----") else pem(crl, "X509 CRL"))
        command += ["-CRLfile", str(path)]
    if crls:
        command += ["-crl_check_all", "-use_deltas"]
    result = subprocess.run(
        [*command, str(tmp / "leaf.pem")], capture_output=True, text=True, timeout=10
    )
    return result.stdout + result.stderr


def pem(der: bytes, label: str = "CERTIFICATE") -> bytes:
    body = base64.encodebytes(der)
    return f"-----BEGIN {label}-----\n".encode() + body + f"-----END {label}-----\n".encode()
