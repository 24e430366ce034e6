"""TOTP two-factor codes (RFC 6238 through pyotp) and recovery codes.

The secret is kept Fernet-encrypted under a key derived from MEDIAGATE_SECRET_KEY, so a
copy of the database alone does not yield anyone's codes; it is never logged. A code is
accepted within one 30-second step either side of now (clock drift), and only for a step
later than the last one accepted (users.totp_last_step, moved by a conditional UPDATE), so
a code seen once cannot be replayed within its window. Recovery codes are 10 random
values shown once; only their HMAC is stored, each spent by one conditional UPDATE."""

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken

DRIFT_STEPS = 1
"""Steps accepted either side of now: RFC 6238 section 5.2 recommends at most one."""
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
RECOVERY_GROUP = 5


class SecretBox:
    """Encrypts and decrypts TOTP secrets with a key of their own, derived from the
    server's secret (HMAC with a label, so it is not the key that signs API keys)."""

    def __init__(self, server_secret: bytes) -> None:
        derived = hmac.new(server_secret, b"mediagate totp secret v1", hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))
        self._mac_key = hmac.new(server_secret, b"mediagate recovery v1", hashlib.sha256).digest()

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str | None:
        """The secret, or None if it was sealed under another server secret."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            return None

    def recovery_hash(self, code: str) -> str:
        return hmac.new(self._mac_key, normal_recovery(code).encode(), "sha256").hexdigest()


def new_secret() -> str:
    """A 160-bit base32 secret (RFC 4226 section 4 recommends 160 bits)."""
    return pyotp.random_base32()


def enrolment_uri(secret: str, email: str, issuer: str) -> str:
    """The otpauth:// URI authenticator apps read (Google Authenticator's Key Uri Format)."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code (no image, no script: allowed by our CSP)."""
    return str(segno.make(uri, error="m").svg_inline(scale=4, title="Two-factor QR code"))


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code `code` is, within the drift allowed; else None."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now.timestamp())
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def code_at(secret: str, now: datetime) -> str:
    """The code an authenticator shows at `now` (what tests type in)."""
    return pyotp.TOTP(secret).at(now)


def new_recovery_codes() -> list[str]:
    """10 codes of 10 characters (about 49 bits each), grouped for reading: xxxxx-xxxxx."""

    def one() -> str:
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(2 * RECOVERY_GROUP))
        return f"{raw[:RECOVERY_GROUP]}-{raw[RECOVERY_GROUP:]}"

    return [one() for _ in range(RECOVERY_CODES)]


def normal_recovery(code: str) -> str:
    """As typed (any case, with or without the dash or spaces) to the stored form."""
    return "".join(c for c in code.lower() if c.isalnum())


def looks_like_recovery(code: str) -> bool:
    return len(normal_recovery(code)) == 2 * RECOVERY_GROUP
