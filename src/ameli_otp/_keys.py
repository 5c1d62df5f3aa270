"""Keyed hashes and device tokens (RULES R4): what the store sees instead of the data.

Every secret of the list gives four keys, derived with HMAC-SHA256 under
distinct labels: one names records (only the *last* secret's is used, so that
rotating changes no record name), one hashes codes (e-mailed and recovery codes),
one signs device tokens, one derives authenticator secrets (for these three, the
*first* secret's makes new ones, all are accepted).

Authenticator secrets (R11.4) are derived, not stored: the store keeps an
enrollment's *ref*, the id of the key it was made under and a random nonce, and
the secret is ``HMAC(totp key, account key | nonce)``, 160 bits. A store dump
without the library's secret gives no authenticator secret; adding a new first
secret keeps every enrollment (its key is still listed); dropping the secret an
enrollment was made under disables it (docs/security.md).
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets as _secrets
from collections.abc import Sequence

__all__ = ["Keyring", "SecretInput"]

SecretInput = bytes | str | Sequence[bytes | str]

MIN_SECRET_BYTES = 32
_NAME_BYTES = 12  # 96-bit record names: collision odds ~1e-11 for a billion accounts
_HASH_BYTES = 16  # 128-bit keyed code hashes
_TOKEN_VERSION = b"\x01"
_NONCE_BYTES = 16
_TOTP_BYTES = 20  # R11.1: 160-bit authenticator secrets (RFC 4226's recommended length)
_BROWSER_TAG = 16  # what trust rests on: 128 bits
_ACCOUNT_TAG = 16  # what forget_device checks (it has no fingerprint): 128 bits too
_HEAD = 1 + 8 + _NONCE_BYTES  # version, grant time (ms, signed big-endian), nonce
_SIGNED = _HEAD + _BROWSER_TAG
_TOKEN_CHARS = -(-(_SIGNED + _ACCOUNT_TAG) * 4 // 3)  # unpadded base64url
_TOKEN_RE = re.compile(rf"[A-Za-z0-9_-]{{{_TOKEN_CHARS}}}")


def b64(data: bytes) -> str:
    """Unpadded URL-safe base64."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _secret_list(secret: object) -> list[bytes]:
    if isinstance(secret, bytes | str):
        items: list[object] = [secret]
    elif isinstance(secret, Sequence):
        items = list(secret)
        if not items:
            raise ValueError("secret must not be an empty sequence")
    else:
        raise TypeError(
            f"secret must be bytes, str or a sequence of them, not {type(secret).__name__}"
        )
    keys = []
    for i, item in enumerate(items):
        where = "secret" if len(items) == 1 and item is secret else f"secret[{i}]"
        if isinstance(item, str):
            item = _utf8(item)
        if not isinstance(item, bytes):
            raise TypeError(f"{where} must be bytes or str, not {type(item).__name__}")
        if len(item) < MIN_SECRET_BYTES:
            raise ValueError(
                f"{where} must be at least {MIN_SECRET_BYTES} bytes, got {len(item)}: "
                "use secrets.token_bytes(32)"
            )
        keys.append(item)
    return keys


def _derive(secret: bytes, label: bytes) -> bytes:
    return hmac.digest(secret, b"ameli-otp/v1/" + label, "sha256")


class _Mac:
    """HMAC-SHA256 under one fixed key, its keyed state built once.

    ``hmac.digest(key, msg)`` sets the key up again at each call (two of its four
    SHA-256 blocks); copying a prepared ``hmac.HMAC`` skips that: the same tags,
    about twice as fast, and every public call makes one to four of them.
    """

    __slots__ = ("_ready",)

    def __init__(self, key: bytes) -> None:
        self._ready = hmac.new(key, digestmod="sha256")

    def __call__(self, msg: bytes) -> bytes:
        mac = self._ready.copy()
        mac.update(msg)
        return mac.digest()


class Keyring:
    """The derived keys of a secret or a list of secrets (newest first)."""

    __slots__ = ("_code_macs", "_device_macs", "_name_mac", "_totp_macs")

    def __init__(self, secret: object) -> None:
        keys = _secret_list(secret)
        self._name_mac = _Mac(_derive(keys[-1], b"name"))
        self._code_macs = tuple(_Mac(_derive(k, b"code")) for k in keys)
        self._device_macs = tuple(_Mac(_derive(k, b"device")) for k in keys)
        # key id (8 hex characters, not secret) -> the key deriving authenticator secrets
        self._totp_macs: dict[str, _Mac] = {}
        for k in keys:
            mac = _Mac(_derive(k, b"totp"))
            self._totp_macs.setdefault(mac(b"key id")[:4].hex(), mac)

    def name(self, label: bytes, value: str) -> str:
        """The record name of ``value`` under ``label``: 16 URL-safe characters, a keyed hash."""
        return b64(self._name_mac(label + b"\x00" + _utf8(value))[:_NAME_BYTES])

    # -- codes ------------------------------------------------------------------------------
    def code_hash(self, account_key: str, code: str) -> bytes:
        """The keyed hash stored for a new code (first secret)."""
        return _code_mac(self._code_macs[0], account_key, code)

    def code_candidates(self, account_key: str, code: str) -> tuple[bytes, ...]:
        """The hashes ``code`` would have under every secret (R4.1)."""
        return tuple(_code_mac(mac, account_key, code) for mac in self._code_macs)

    def recovery_hash(self, account_key: str, code: str) -> bytes:
        """The keyed hash stored for a new recovery code (first secret; R12.1)."""
        return _recovery_mac(self._code_macs[0], account_key, code)

    def recovery_candidates(self, account_key: str, code: str) -> tuple[bytes, ...]:
        """The hashes a typed recovery code would have under every secret (R4.1, R12.2)."""
        return tuple(_recovery_mac(mac, account_key, code) for mac in self._code_macs)

    # -- authenticator secrets (R11.4) --------------------------------------------------------
    def new_authenticator(self, account_key: str) -> tuple[str, bytes]:
        """``(ref, secret)`` of a new enrollment: the store keeps the ref only."""
        key_id = next(iter(self._totp_macs))  # the first secret's (dicts keep order)
        ref = key_id + b64(_secrets.token_bytes(_NONCE_BYTES))
        return ref, self._totp_macs[key_id](_totp_msg(account_key, ref))[:_TOTP_BYTES]

    def authenticator_secret(self, account_key: str, ref: str) -> bytes | None:
        """The secret of enrollment ``ref``, or None if its key is no longer listed."""
        mac = self._totp_macs.get(ref[:8])
        return None if mac is None else mac(_totp_msg(account_key, ref))[:_TOTP_BYTES]

    # -- device tokens (R3, R4.3) -------------------------------------------------------------
    # token = base64url(version | granted at (ms, 8 bytes) | nonce | browser tag | account tag)
    # The browser tag (HMAC over account key, header and fingerprint) is what trust rests on.
    # The account tag (HMAC over account key, header and browser tag) covers every other
    # byte, so forget_device, which has no fingerprint, still rejects any altered token.
    # The store keeps only the nonce, as the device id.

    def new_device_token(self, account_key: str, fingerprint: str, now: int) -> tuple[str, str]:
        """A fresh token granted at ``now`` for this account and fingerprint.

        Returns ``(token, device id)``; the store keeps only the device id (the nonce).
        """
        nonce = _secrets.token_bytes(_NONCE_BYTES)
        head = _TOKEN_VERSION + now.to_bytes(8, "big", signed=True) + nonce
        mac = self._device_macs[0]
        signed = head + _browser_tag(mac, account_key, head, fingerprint)
        return b64(signed + _account_tag(mac, account_key, signed)), b64(nonce)

    def check_device_token(
        self, account_key: str, token: object, fingerprint: str
    ) -> tuple[str, int] | None:
        """``(device id, granted at)`` if ``token`` was signed for this account and fingerprint.

        Anything else (not a ``str``, garbage, altered, truncated, another account or
        fingerprint) gives None without raising and without any store access.
        """
        data = _token_bytes(token)
        if data is None:
            return None
        head, signed = data[:_HEAD], data[:_SIGNED]
        browser, account = data[_HEAD:_SIGNED], data[_SIGNED:]
        good = False
        for mac in self._device_macs:  # both tags, under one key: every byte is covered
            good |= hmac.compare_digest(
                browser, _browser_tag(mac, account_key, head, fingerprint)
            ) & hmac.compare_digest(account, _account_tag(mac, account_key, signed))
        if not good:
            return None
        return b64(head[9:]), int.from_bytes(head[1:9], "big", signed=True)

    def device_id_of(self, account_key: str, token: object) -> str | None:
        """The device id of an unaltered token signed for this account (any browser)."""
        data = _token_bytes(token)
        if data is None:
            return None
        signed, account = data[:_SIGNED], data[_SIGNED:]
        good = False
        for mac in self._device_macs:
            good |= hmac.compare_digest(account, _account_tag(mac, account_key, signed))
        return b64(data[9:_HEAD]) if good else None


def _token_bytes(token: object) -> bytes | None:
    """The bytes of a well-formed token of this version, or None; never raises."""
    if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
        return None
    data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    if b64(data) != token or data[:1] != _TOKEN_VERSION:  # non-canonical or unknown version
        return None
    return data


def _code_mac(mac: _Mac, account_key: str, code: str) -> bytes:
    return mac(account_key.encode("ascii") + b"\x00" + code.encode("ascii"))[:_HASH_BYTES]


def _recovery_mac(mac: _Mac, account_key: str, code: str) -> bytes:
    return mac(b"recovery\x00" + account_key.encode("ascii") + b"\x00" + code.encode("ascii"))[
        :_HASH_BYTES
    ]


def _totp_msg(account_key: str, ref: str) -> bytes:
    return b"totp\x00" + account_key.encode("ascii") + b"\x00" + ref.encode("ascii")


def _account_tag(mac: _Mac, account_key: str, signed: bytes) -> bytes:
    return mac(b"device-account\x00" + account_key.encode("ascii") + signed)[:_ACCOUNT_TAG]


def _browser_tag(mac: _Mac, account_key: str, head: bytes, fingerprint: str) -> bytes:
    # account_key and head have fixed lengths, so the fingerprint last is unambiguous
    msg = b"device-browser\x00" + account_key.encode("ascii") + head + _utf8(fingerprint)
    return mac(msg)[:_BROWSER_TAG]
