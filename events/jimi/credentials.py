"""Where an account's Open API credentials come from: `Account.credential_ref` names them, the database never holds
them (docs/jimi.md, "Credentials").

    env:PREFIX   (or a bare PREFIX)  environment variables PREFIX_APP_KEY, PREFIX_APP_SECRET, PREFIX_USER_ID and
                                     PREFIX_PASSWORD (or PREFIX_PASSWORD_MD5, the lower-case hex MD5 of it)
    file:PATH    a file of `name=value` lines with the same four names in lower case (app_key, app_secret,
                 user_id, password or password_md5); `#` starts a comment; a relative PATH is read from the
                 project directory. Suits Docker and Kubernetes secrets (file:/run/secrets/jimi-nairobi).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from events.jimi.signing import password_md5

FIELDS = ("app_key", "app_secret", "user_id")


class CredentialsMissing(LookupError):
    """The reference names nothing usable; the message says what is missing, never a value."""


@dataclass(frozen=True)
class Credentials:
    app_key: str
    app_secret: str = field(repr=False)
    user_id: str
    user_pwd_md5: str = field(repr=False)


def _from_values(values: dict[str, str], where: str) -> Credentials:
    missing = [name for name in FIELDS if not values.get(name)]
    md5 = values.get("password_md5") or (password_md5(values["password"]) if values.get("password") else "")
    if not md5:
        missing.append("password (or password_md5)")
    if missing:
        raise CredentialsMissing(f"{where}: missing {', '.join(missing)}")
    return Credentials(values["app_key"], values["app_secret"], values["user_id"], md5.lower())


def _from_env(prefix: str) -> Credentials:
    names = (*FIELDS, "password", "password_md5")
    values = {name: os.environ.get(f"{prefix}_{name.upper()}", "") for name in names}
    return _from_values(values, f"environment {prefix}_*")


def _from_file(path_text: str) -> Credentials:
    path = Path(path_text)
    if not path.is_absolute():
        path = Path(settings.BASE_DIR) / path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CredentialsMissing(f"file {path}: {exc.strerror or exc}") from None
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name.strip().lower()] = value.strip()
    return _from_values(values, f"file {path}")


def credentials_resolve(ref: str) -> Credentials:
    ref = ref.strip()
    if not ref:
        raise CredentialsMissing("the account has no credential reference")
    scheme, sep, rest = ref.partition(":")
    if sep and scheme == "file":
        return _from_file(rest)
    if sep and scheme == "env":
        return _from_env(rest)
    if sep:
        raise CredentialsMissing(f"unknown credential reference scheme {scheme!r} (use env:NAME or file:PATH)")
    return _from_env(ref)
