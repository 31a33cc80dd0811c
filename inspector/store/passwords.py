"""Password hashes: argon2id with OWASP's parameters; older scrypt hashes still verify and get upgraded.

A credential row is tied to the chain by its fingerprint, which the chained event that set it
carries: a hash inserted behind the application's back matches no event and signs nobody in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP Password Storage Cheat Sheet, argon2id minimum: m = 19 MiB, t = 2, p = 1.
ARGON2_MEMORY_KIB, ARGON2_TIME, ARGON2_PARALLELISM = 19456, 2, 1
_HASHER = PasswordHasher(
    time_cost=ARGON2_TIME,
    memory_cost=ARGON2_MEMORY_KIB,
    parallelism=ARGON2_PARALLELISM,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)
# A stored string asking for more than this is refused, not computed (memory or time bomb).
_MAX_MEMORY_KIB, _MAX_TIME, _MAX_LANES = 1 << 20, 16, 16
_SCRYPT_MAX_N = 2**20
_FINGERPRINT_TAG = b"rankclip-inspector/credential/v1\x00"


def hash_password(password: str) -> str:
    """An argon2id PHC string with a fresh 16-byte salt."""
    return _HASHER.hash(password)


def check_password(password: str, encoded: str) -> bool:
    """True if the password matches (argon2id, or a legacy scrypt string); malformed strings never match."""
    if encoded.startswith("$argon2id$"):
        try:
            params = extract_parameters(encoded)
            if params.memory_cost > _MAX_MEMORY_KIB or params.time_cost > _MAX_TIME or params.parallelism > _MAX_LANES:
                return False
            return _HASHER.verify(encoded, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError, ValueError):
            return False
    if encoded.startswith("scrypt$"):
        return _check_scrypt(password, encoded)
    return False


def needs_rehash(encoded: str) -> bool:
    """Whether a hash that just verified should be replaced by one with this release's parameters."""
    if not encoded.startswith("$argon2id$"):
        return True
    try:
        return _HASHER.check_needs_rehash(encoded)
    except (InvalidHashError, ValueError):
        return True


def fingerprint(user_name: str, encoded: str) -> str:
    """What the chained event carries for a credential row: useless for guessing (the salt is not in it)."""
    return hashlib.sha256(_FINGERPRINT_TAG + user_name.encode("utf-8") + b"\x00" + encoded.encode("utf-8")).hexdigest()


def _check_scrypt(password: str, encoded: str) -> bool:
    """The 'scrypt$N$r$p$salt$hash' strings of earlier releases."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        n_, r_, p_ = int(n), int(r), int(p)
        if scheme != "scrypt" or not (2 <= n_ <= _SCRYPT_MAX_N and 1 <= r_ <= 32 and 1 <= p_ <= 4):
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt, validate=True),
            n=n_,
            r=r_,
            p=p_,
            maxmem=256 * n_ * r_ + 2**20,
            dklen=32,
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def scrypt_hash(password: str, salt: bytes, n: int = 2**14) -> str:
    """A legacy scrypt string as earlier releases wrote them (tests of the upgrade path)."""
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=8, p=1, maxmem=256 * n * 8 + 2**20, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${n}$8$1${b64(salt).decode()}${b64(digest).decode()}"
