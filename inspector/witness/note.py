"""Signed checkpoints of the chain head: Ed25519 identities, C2SP signed notes and an RFC 6962 tree.

The checkpoint body is the C2SP tlog-checkpoint text: origin line, tree size, base64 root hash
of the RFC 6962 Merkle tree whose leaves are the chain's entry hashes in seq order. The station
signs it as a signed-note Ed25519 signature (type 0x01); a witness adds a tlog-cosignature/v1
(type 0x04, timestamped). Keys are exchanged as signed-note verifier keys ("vkeys":
name+keyid+base64(type || public key)).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from inspector.errors import InspectorError
from models.durable import create_secret_file

ED25519 = 0x01  # signed-note Ed25519 signature
COSIGNATURE = 0x04  # tlog-cosignature/v1, timestamped Ed25519
EMPTY_ROOT = hashlib.sha256(b"").digest()
_DASH = "\u2014 "


class NoteError(InspectorError):
    """A key, note or checkpoint is malformed or its signature does not verify."""


def key_id(name: str, sig_type: int, public: bytes) -> bytes:
    """The signed-note key ID: SHA-256(name || LF || type || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public).digest()[:4]


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """A signed-note verifier key: who signed (name), with what key and signature type."""

    name: str
    sig_type: int
    public: bytes

    @property
    def id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public)

    def __str__(self) -> str:
        return f"{self.name}+{self.id.hex()}+{base64.b64encode(bytes([self.sig_type]) + self.public).decode()}"

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """Read a vkey string; NoteError names what is wrong."""
        try:
            name, hex_id, b64 = text.strip().split("+", 2)  # names hold no "+", base64 may
            raw = base64.b64decode(b64, validate=True)
            verifier = cls(name, raw[0], raw[1:])
            ok = bool(name) and len(verifier.public) == 32 and verifier.id.hex() == hex_id.lower()
        except (ValueError, IndexError):
            ok = False
        if not ok:
            raise NoteError(
                f"{text.strip()[:80]!r} is not a verifier key (name+keyid+base64 key, as"
                " `inspector witness key` or `inspector log identity` prints it)"
            )
        return verifier

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def load_identity(path: Path, create: bool) -> Ed25519PrivateKey:
    """An Ed25519 private key kept as 64 hex digits in a 0600 file; created on first use when asked."""
    if create:
        try:
            create_secret_file(path)
        except OSError as exc:
            raise NoteError(f"identity key {path} cannot be created: {exc.strerror or exc}") from None
    try:
        if os.name == "posix" and path.stat().st_mode & 0o077:
            raise NoteError(f"identity key {path} is readable by other users; run `chmod 600 {path}`")
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(path.read_text(encoding="ascii").strip()))
    except FileNotFoundError:
        raise NoteError(f"identity key {path} is missing; restore it from the backup") from None
    except ValueError:
        raise NoteError(f"identity key {path} is not 64 hex digits; restore it from the backup") from None
    except OSError as exc:
        raise NoteError(f"identity key {path} cannot be read: {exc.strerror or exc}") from None


def station_origin_of(public: bytes) -> str:
    """The log's origin line: bound to the station's public key, so no one else can claim it."""
    return "rankclip-inspector/station/" + hashlib.sha256(public).hexdigest()[:32]


def station_origin(key: Ed25519PrivateKey) -> str:
    return station_origin_of(public_bytes(key.public_key()))


def signer_verifier(key: Ed25519PrivateKey, name: str, sig_type: int = ED25519) -> Verifier:
    return Verifier(name, sig_type, public_bytes(key.public_key()))


# --- RFC 6962 Merkle tree over entry hashes --------------------------------------------------


def leaf_hash(entry_hash_hex: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(entry_hash_hex)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class CompactRange:
    """The roots of the perfect subtrees covering leaves [0, size): O(log n) state, O(1) amortised append."""

    def __init__(self, size: int = 0, nodes: list[bytes] | None = None) -> None:
        self.size = size
        self.nodes = list(nodes or [])  # left to right, sizes = the set bits of `size`, largest first
        if len(self.nodes) != size.bit_count():
            raise NoteError(f"a compact range of size {size} needs {size.bit_count()} nodes, not {len(self.nodes)}")

    def append(self, leaf: bytes) -> None:
        self.nodes.append(leaf)
        self.size += 1
        merged = self.size
        while merged % 2 == 0:  # the two last subtrees have equal size: merge them
            right = self.nodes.pop()
            self.nodes[-1] = _node(self.nodes[-1], right)
            merged //= 2

    def root(self) -> bytes:
        """MTH(D[0:size]) as RFC 6962 defines it: the subtrees folded right to left."""
        if not self.nodes:
            return EMPTY_ROOT
        digest = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            digest = _node(node, digest)
        return digest

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self.nodes)


# --- checkpoints and signatures ---------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> bytes:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n".encode()


def sign_checkpoint(checkpoint: Checkpoint, key: Ed25519PrivateKey) -> str:
    """The checkpoint as a signed note with the station's signature (key name = origin)."""
    verifier = signer_verifier(key, checkpoint.origin)
    signature = key.sign(checkpoint.body())
    line = f"{_DASH}{checkpoint.origin} {base64.b64encode(verifier.id + signature).decode()}\n"
    return checkpoint.body().decode() + "\n" + line


def cosignature_line(body: bytes, key: Ed25519PrivateKey, name: str, timestamp: int) -> str:
    """A tlog-cosignature/v1 line over a checkpoint body."""
    message = b"cosignature/v1\ntime %d\n" % timestamp + body
    verifier = signer_verifier(key, name, COSIGNATURE)
    blob = verifier.id + struct.pack(">Q", timestamp) + key.sign(message)
    return f"{_DASH}{name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class SignedNote:
    checkpoint: Checkpoint
    body: bytes
    signatures: tuple[tuple[str, bytes], ...]  # (key name, base64-decoded blob)

    def signed_by(self, verifier: Verifier) -> int | None:
        """Whether a signature of `verifier` verifies: None if absent or bad; else its timestamp (0 if none)."""
        for name, blob in self.signatures:
            if name != verifier.name or blob[:4] != verifier.id:
                continue
            if verifier.sig_type == COSIGNATURE and len(blob) == 4 + 8 + 64:
                timestamp = struct.unpack(">Q", blob[4:12])[0]
                if verifier.verify(b"cosignature/v1\ntime %d\n" % timestamp + self.body, blob[12:]):
                    return timestamp
            elif verifier.sig_type == ED25519 and len(blob) == 4 + 64 and verifier.verify(self.body, blob[4:]):
                return 0
            return None
        return None


def parse_note(text: str) -> SignedNote:
    """A checkpoint note: body (origin, size, root), blank line, signature lines."""
    body, sep, sigs = text.partition("\n\n")
    lines = body.split("\n")
    try:
        if not sep or len(lines) < 3 or any("\x00" <= c < " " and c != "\n" for c in text):
            raise ValueError("not a signed note")
        size = int(lines[1])
        if size < 0 or lines[1] != str(size):
            raise ValueError("bad tree size")
        root = base64.b64decode(lines[2], validate=True)
        if len(root) != 32:
            raise ValueError("root hash is not 32 bytes")
        signatures = []
        for line in sigs.splitlines():
            if not line.startswith(_DASH):
                raise ValueError(f"bad signature line {line[:40]!r}")
            name, _, b64 = line[len(_DASH) :].rpartition(" ")
            signatures.append((name, base64.b64decode(b64, validate=True)))
    except ValueError as exc:
        raise NoteError(f"malformed checkpoint: {exc}") from None
    return SignedNote(Checkpoint(lines[0], size, root), (body + "\n").encode("utf-8"), tuple(signatures))
