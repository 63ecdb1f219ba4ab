"""What a dead letter may show, and how its exact bytes are kept without anyone reading them.

A ``raw_logs`` message the ingest job cannot turn into a record is, by definition, one the masker
never saw as a record: it may hold card numbers, e-mails, tokens, in the clear. So the dead letter
keeps it twice, neither readable as it came:

- ``original``: the first 4 KiB as text, **masked** with the pipeline's masker (the tenant's rules
  when the envelope names one), so whoever looks at the topic sees what went wrong, not the PII;
- ``original_sealed``: the exact bytes, **encrypted** (AES-256-GCM) with ``STRATA_DLQ_KEY``, so
  nothing accepted is lost: an operator with the key decrypts it (``strata dlq show --decrypt``),
  fixes what was wrong and sends it again.

Masking alone would lose the bytes a replay needs (a masked line is another line, with another
``log_id``); encryption alone would leave nothing to read without the key. A sealed value names its
key by a short id, so a rotated key says which one an old entry needs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

# Public on purpose, like the identity key's local default: the local stack needs no secret to
# start, and everything outside it must set STRATA_DLQ_KEY (dlq_secret refuses otherwise).
LOCAL_DLQ_KEY = "strata-local-stack-dead-letter-key"
_VERSION = "v1"
_AAD = b"strata raw_logs_dlq original v1"


class DeadLetterKeyError(ValueError):
    """The key is missing where one is required, or it does not open this value."""


def dlq_secret(configured: str, *, local_stack: bool) -> str:
    """The key to seal dead letters with: the configured one; on the local stack alone, the public
    default."""
    if configured:
        if len(configured.encode()) < 16:
            raise DeadLetterKeyError("STRATA_DLQ_KEY must be at least 16 bytes long")
        return configured
    if local_stack:
        return LOCAL_DLQ_KEY
    raise DeadLetterKeyError(
        "STRATA_DLQ_KEY is not set: dead letters keep the raw bytes of what could not be parsed, "
        "encrypted with it; set it (at least 16 random bytes, the same for every job and for "
        "`strata dlq show --decrypt`)"
    )


class DeadLetterCipher:
    """AES-256-GCM with a key derived from a secret of any length.

    >>> cipher = DeadLetterCipher("a secret of sixteen bytes or more")
    >>> cipher.open(cipher.seal(b"card 4111 1111 1111 1111"))
    b'card 4111 1111 1111 1111'
    """

    def __init__(self, secret: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = hashlib.sha256(b"strata dlq key\x00" + secret.encode()).digest()
        self.key_id = hashlib.sha256(b"strata dlq key id\x00" + key).hexdigest()[:8]
        self._aead = AESGCM(key)

    def seal(self, data: bytes) -> str:
        """``v1.<key id>.<base64url(nonce | ciphertext | tag)>``; a fresh random nonce each time."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, data, _AAD)
        return f"{_VERSION}.{self.key_id}.{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def open(self, token: str) -> bytes:
        """The bytes :meth:`seal` was given; :class:`DeadLetterKeyError` for another key's value or
        a value that was changed."""
        from cryptography.exceptions import InvalidTag

        version, _, rest = token.partition(".")
        key_id, _, body = rest.partition(".")
        if version != _VERSION or not body:
            raise DeadLetterKeyError("not a sealed dead-letter value")
        if key_id != self.key_id:
            raise DeadLetterKeyError(f"sealed with key {key_id}, not with this key ({self.key_id})")
        try:
            raw = base64.urlsafe_b64decode(body)
            return self._aead.decrypt(raw[:12], raw[12:], _AAD)
        except (binascii.Error, InvalidTag, ValueError) as exc:
            raise DeadLetterKeyError("the sealed value is damaged or was changed") from exc
