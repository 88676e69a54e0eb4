"""Does a public key verify a signature? The one primitive behind certificate and CRL checks.

Bytes in (the signed DER, the signature, the issuer's SubjectPublicKeyInfo), ``None`` or the
reason out. The algorithm must fit the key's type (an ECDSA signature under an RSA key is no
signature), as OpenSSL demands (X509_V_ERR_SIGNATURE_ALGORITHM_MISMATCH).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from capana.model import Certificate

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "md5": hashes.MD5,
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def check_signature(
    algorithm: str, hash_name: str | None, signature: bytes, signed: bytes, key_der: bytes
) -> str | None:
    """None when the key (SubjectPublicKeyInfo DER) verifies ``signature`` over ``signed``.

    ``algorithm`` is the signature algorithm's name ("sha256WithRSAEncryption",
    "ecdsa-with-SHA384", "RSASSA-PSS", "ed25519"); ``hash_name`` its hash ("sha256").
    """
    lowered = algorithm.lower()
    try:
        key = _public_key(key_der)
        if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, signed)
            return None
        digest = _HASHES[(hash_name or "").lower()]()
        if isinstance(key, rsa.RSAPublicKey) and _family(lowered) == "rsa":
            pad = (
                padding.PSS(padding.MGF1(digest), padding.PSS.AUTO)
                if "pss" in lowered
                else padding.PKCS1v15()
            )
            key.verify(signature, signed, pad, digest)
        elif isinstance(key, ec.EllipticCurvePublicKey) and _family(lowered) == "ecdsa":
            key.verify(signature, signed, ec.ECDSA(digest))
        elif isinstance(key, dsa.DSAPublicKey) and _family(lowered) == "dsa":
            key.verify(signature, signed, digest)
        else:
            return f"signature algorithm {algorithm} does not fit the issuer key"
    except InvalidSignature:
        return "signature does not verify"
    except (KeyError, UnsupportedAlgorithm, ValueError, TypeError) as error:
        return f"signature cannot be checked ({algorithm}): {error}"
    return None


def signed_by(child: Certificate, issuer: Certificate) -> str | None:
    """None when ``issuer``'s key verifies ``child``'s signature, else why not."""
    return check_signature(
        child.signature_algorithm,
        child.signature_hash,
        child.signature,
        child.tbs_der,
        issuer.public_key_der,
    )


def _family(algorithm: str) -> str:
    if "ecdsa" in algorithm:
        return "ecdsa"
    if "dsa" in algorithm:
        return "dsa"
    return "rsa" if "rsa" in algorithm or "pss" in algorithm else algorithm


@lru_cache(maxsize=1024)
def _public_key(der: bytes) -> PublicKeyTypes:  # cached: trust stores repeat
    return serialization.load_der_public_key(der)
