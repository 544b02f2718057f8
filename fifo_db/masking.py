"""Passwords never reach the screen: the one place a DSN (or a message that may quote one) is
made printable.

mask_dsn(dsn) shows a DSN with its password replaced by ****, in each form libpq reads:
a URL's user:password@, a URL's ?password= (and sslpassword=) parameter, and key=value's
password=... (quoted or not). It works on malformed DSNs too (the ones whose error message
echoes them), masking more rather than less when the text is ambiguous.

scrub(text, dsn) makes any text printable: the DSN (and anything DSN-shaped) masked, and the
password of `dsn` removed wherever it still shows (libpq's 'missing "=" after "b"' quotes a
piece of an unquoted password that holds a space).

Every message that may hold a DSN goes through one of them: the CLI's error line (cli.py), the
connection errors (connection.py, worker.py, databases.py), the DSNs the demo and `db create`
print.
"""

from __future__ import annotations

import re

MASK = "****"

# a URL's userinfo password: scheme://user:PASSWORD@ (greedy to the last @ of the line: a
# password holding an unescaped @ is masked whole)
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@'\"]*:)(?P<secret>.*)(?=@)")
# the same inside a longer text: the password runs to the last @ before a space or a quote
_URL_PASSWORD_IN_TEXT = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@'\"]*:)(?P<secret>[^\s'\"]*)(?=@)")
# a URL parameter: ?password=... or &sslpassword=...
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:ssl)?password=)(?P<secret>[^&#\s'\"]*)", re.IGNORECASE)
# key=value: password = 'quoted \' value' | unquoted value; an unquoted value in a malformed DSN
# may hold spaces (libpq stops there), so it runs to the next `key=` or the end
_KV_PASSWORD = re.compile(
    r"(?P<head>(?<![\w?&])(?:ssl)?password\s*=\s*)"
    r"(?P<secret>'(?:[^'\\]|\\.)*'?|.*?)(?=\s+[A-Za-z_][\w]*\s*=|\s*$)", re.IGNORECASE)
# the same, when the DSN sits inside a longer text: an unquoted value ends at the first space
_KV_PASSWORD_IN_TEXT = re.compile(
    r"(?P<head>(?<![\w?&])(?:ssl)?password\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'?|[^\s'\"]*)", re.IGNORECASE)


_PLACEHOLDER = "PASSWORD"     # the messages' own example, postgresql://USER:PASSWORD@HOST/DB


def _masked(match: re.Match) -> str:
    secret = match.group("secret")
    return match.group("head") + (MASK if secret and secret != _PLACEHOLDER else secret)


def mask_dsn(dsn: str | None) -> str | None:
    """`dsn` with every password in it replaced by ****; None stays None."""
    if not dsn:
        return dsn
    if "://" in dsn:
        dsn = _URL_PASSWORD.sub(_masked, dsn)
        return _QUERY_PASSWORD.sub(_masked, dsn)
    return _KV_PASSWORD.sub(_masked, dsn)


def has_password(dsn: str | None) -> bool:
    """Does `dsn` itself carry a password (not PGPASSWORD or ~/.pgpass)?"""
    return bool(dsn) and mask_dsn(dsn) != dsn


def _secrets(dsn: str | None) -> list[str]:
    """The password(s) in `dsn` as the text may quote them: whole, and (for a malformed unquoted
    value holding spaces) word by word."""
    if not dsn:
        return []
    found: list[str] = []
    try:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(dsn)
        found += [str(params[k]) for k in ("password", "sslpassword") if params.get(k)]
    except Exception:     # malformed: what the patterns see
        pass
    patterns = (_URL_PASSWORD, _QUERY_PASSWORD) if "://" in dsn else (_KV_PASSWORD,)
    for pattern in patterns:
        for m in pattern.finditer(dsn):
            secret = m.group("secret").strip("'")
            if secret:
                found.append(secret)
                try:
                    from urllib.parse import unquote

                    found.append(unquote(secret))
                except Exception:
                    pass
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(text: str, dsn: str | None = None) -> str:
    """`text` safe to print: DSN-shaped passwords masked, and the password of `dsn` (the DSN in
    use) removed wherever it shows, whole or a quoted word of it."""
    if dsn:
        masked = mask_dsn(dsn)
        if masked != dsn:
            text = text.replace(dsn, masked)
    text = _URL_PASSWORD_IN_TEXT.sub(_masked, text)
    text = _QUERY_PASSWORD.sub(_masked, text)
    text = _KV_PASSWORD_IN_TEXT.sub(_masked, text)
    for secret in _secrets(dsn):
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
        for word in secret.split():
            for quote in ('"', "'"):
                text = text.replace(f"{quote}{word}{quote}", f"{quote}{MASK}{quote}")
    return text
