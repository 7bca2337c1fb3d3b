"""Request signing (docs/jimi.md, "Request and signing"): MD5 over the sorted parameters between two secrets."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

Param = str | int | float | None


def param_text(value: Param) -> str | None:
    """The string a value is signed and sent as; None (and "") are left out of both."""
    if value is None:
        return None
    text = str(value)
    return text or None


def signed_params(params: Mapping[str, Param]) -> dict[str, str]:
    """Every parameter as the string that is both signed and sent, empty ones dropped (a signature over a value
    sent differently is answered with code 1001)."""
    return {name: text for name, value in params.items() if (text := param_text(value)) is not None}


def sign(params: Mapping[str, Param], secret: str) -> str:
    """32 upper-case hex digits: MD5 of secret + name1value1name2value2… (sorted by name, byte order) + secret."""
    texts = signed_params(params)
    material = "".join(name + texts[name] for name in sorted(texts) if name != "sign")
    return hashlib.md5((secret + material + secret).encode("utf-8")).hexdigest().upper()  # noqa: S324 - Jimi's protocol


def password_md5(password: str) -> str:
    """`user_pwd_md5`: the lower-case hex MD5 of the account password."""
    return hashlib.md5(password.encode("utf-8")).hexdigest()  # noqa: S324 - Jimi's protocol
