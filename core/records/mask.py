"""PII masking: replace e-mails, phones, cards, SSNs, IPs, tokens, keys and secrets with markers.

Runs before anything is stored. Every rule has a cheap pre-check (a character or a substring that
must be present), so a line without candidates costs a few substring searches, not a dozen regex
scans. Digit-shaped kinds (SSN, card, phone, IPv4) share one regex and one pass; the callback
decides between them, because a 13-digit phone with a country prefix looks like a card until the
Luhn check says otherwise.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, field_validator

MARKERS: dict[str, str] = {
    "EMAIL": "[EMAIL]",
    "IBAN": "[IBAN]",
    "PRIVATE_KEY": "[PRIVATE_KEY]",
    "PHONE": "[PHONE]",
    "CARD": "[CARD]",
    "SSN": "[SSN]",
    "IP": "[IP]",
    "TOKEN": "[TOKEN]",
    "AWS_KEY": "[AWS_KEY]",
    "SECRET": "[REDACTED]",
}

DEFAULT_SECRET_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "access_key",
    "private_key",
    "client_secret",
    "authorization",
    "credential",
    "session_id",
    "sessionid",
    "cookie",
)


def valid_regex(regex: str) -> str:
    """``regex`` if Python compiles it, else a ValueError a config file's author can act on."""
    try:
        re.compile(regex)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {regex!r}: {exc}") from exc
    return regex


class CustomRule(BaseModel):
    """A tenant's own kind: every match of ``regex`` becomes ``marker``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    regex: str
    marker: str

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        return valid_regex(value)


class MaskRules(BaseModel):
    """Which kinds a tenant masks (``masking.default`` and ``masking.tenants.<tenant>`` of the
    pipeline configuration). Frozen, so equal rules share one compiled :class:`Masker`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: bool = True
    phone: bool = True
    card: bool = True
    ssn: bool = True
    ipv4: bool = True
    ipv6: bool = True
    bearer: bool = True
    aws_keys: bool = True
    secrets: bool = True
    iban: bool = True
    secret_keys: tuple[str, ...] = DEFAULT_SECRET_KEYS
    custom: tuple[CustomRule, ...] = ()


# Every pattern below starts at a run boundary (lookbehind) and bounds its repeats: a 64 KiB line
# of one long run must cost one scan, not one scan per starting character.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,8}"
    r"\.[A-Za-z]{2,24}"
)
_BEARER = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]+=*")
_AWS = re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}")
# Tokens whose prefix says what they are: GitHub, Slack, Stripe (secret and restricted), GitLab,
# npm, Google API keys, and Strata's own keys (whose key id is kept: it names the key to revoke).
_PREFIXED_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:"
    r"gh[pousr]_[A-Za-z0-9]{36,255}"
    r"|github_pat_[A-Za-z0-9_]{22,255}"
    r"|xox[abposre]-[A-Za-z0-9\-]{10,255}"
    r"|xapp-[A-Za-z0-9\-]{10,255}"
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,255}"
    r"|glpat-[A-Za-z0-9_\-]{20,255}"
    r"|npm_[A-Za-z0-9]{36,255}"
    r"|AIza[A-Za-z0-9_\-]{35}"
    r"|(?P<strata>strata_[0-9a-f]{16}_)[A-Za-z0-9_\-]{20,255}"
    r")"
)


def _token_hint(text: str) -> bool:
    if "_" in text and (
        "gh" in text or "_live_" in text or "_test_" in text or "npm_" in text or "strata_" in text
    ):
        return True
    return "xox" in text or "xapp-" in text or "glpat-" in text or "AIza" in text


# `scheme://user:password@host`: the password goes, the user and host stay (they say which
# database or service, and are rarely the secret).
_URL_CREDENTIALS = re.compile(
    r"(?<![A-Za-z0-9+.\-])([A-Za-z][A-Za-z0-9+.\-]{0,31}://[^\s:/@]{0,256}:)([^\s/@]{1,1024})@"
)
_PEM_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]{0,40})PRIVATE KEY( BLOCK)?-----")
# One pass for the digit-shaped kinds. The boundaries keep ids, versions and dates out: a candidate
# glued to a word character, a dot or a dash (blk_-695..., 1.2.3.4.5, v10.0.0.1) is not PII.
# IBANs (two letters, two check digits, up to 30 letters and digits, optionally in groups of four)
# ride along: they are only masked when the ISO 13616 mod-97 check passes.
_DIGITS = re.compile(
    r"(?<![\w.\-])(?:"
    r"(?P<ssn>\d{3}-\d{2}-\d{4})"
    r"|(?P<ssn9>\d{9})"
    r"|(?P<card>(?:[2-6]\d{3}|1800)(?:[ -]?\d){9,15})"
    r"|(?P<phone>(?:\+\d{1,3}[ .-]?|00\d{1,2}[ .-])?(?:\(\d{3}\)[ ]?|\d{3}[ .-])\d{3}[ .-]\d{4}"
    r"(?:[ ]?(?:x|ext\.?)[ ]?\d{1,5})?"
    r"|\+\d{1,3}[ .-]?\d{1,4}(?:[ .-]\d{2,4}){2,4}"
    r"|[2-9]\d{2}[2-9]\d{6})"
    r"|(?P<ip>(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})"
    r"|(?P<iban>[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30})"
    r")(?!\w|[.\-]\d)"
)
# Card numbers glued to letters (`card4111111111111111`, `4111111111111111USD`), Luhn-checked: the
# pass above leaves numbers glued to words alone (ids). Only run where 13 digits in a row exist.
_GLUED_CARD = re.compile(
    r"(?<=[A-Za-z])(?P<gcard>(?:[2-6]\d{3}|1800)\d{9,15})(?!\d)"
    r"|(?<![\w.\-])(?P<gcard2>(?:[2-6]\d{3}|1800)\d{9,15})(?=[A-Za-z])"
)
_THIRTEEN_DIGITS = re.compile(r"\d{13}")
_PHONE_FULL = re.compile(
    r"(?:\+\d{1,3}[ .-]?|00\d{1,2}[ .-])?(?:\(\d{3}\)[ ]?|\d{3}[ .-])\d{3}[ .-]\d{4}"
    r"(?:[ ]?(?:x|ext\.?)[ ]?\d{1,5})?"
)
# Ten bare digits are as often a thread id or a counter as a phone number: only mask them when
# the words just before say it is one.
_PHONE_CONTEXT = re.compile(r"(?i)phone|tel\b|mobile|cell|call|sms|fax|whatsapp|contact")
# Nine bare digits are an SSN only when the words just before (or the attribute's key) say so.
_SSN_CONTEXT = re.compile(r"(?i)ssn|social|security.?n|tax.?id|\btin\b")
_IPV6 = re.compile(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%\w+)?(?::(?:\d{1,3}\.){3}\d{1,3})?")
_HAS_DIGIT = re.compile(r"\d")
_SD_ID_PREFIX = re.compile(r"[^\s@=\]\"]{1,32}@\d{1,10}\.")
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _valid_ssn(s: str) -> bool:
    digits = s.replace("-", "").replace(" ", "")
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def iban_ok(text: str) -> bool:
    """ISO 13616: 15 to 34 characters whose rearranged number is 1 modulo 97."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    total = 0
    for ch in rearranged:
        total = (
            total * (100 if ch.isalpha() else 10) + (ord(ch) - 55 if ch.isalpha() else ord(ch) - 48)
        ) % 97
    return total == 1


def _token_repl(counts: dict[str, int]) -> Callable[[re.Match[str]], str]:
    def repl(m: re.Match[str]) -> str:
        counts["TOKEN"] = counts.get("TOKEN", 0) + 1
        strata = m.group("strata")
        return f"{strata}[TOKEN]" if strata else MARKERS["TOKEN"]

    return repl


def mask_private_keys(text: str, counts: dict[str, int]) -> str:
    """Every PEM private key block replaced, from its BEGIN line to its END line, or to the end
    of ``text`` when the END is missing (a key cut short is still a key). Found with ``str.find``,
    so the cost is one scan whatever the text holds."""
    out: list[str] = []
    pos = 0
    while True:
        begin = text.find("-----BEGIN ", pos)
        if begin < 0:
            break
        m = _PEM_BEGIN.match(text, begin)
        if m is None:
            out.append(text[pos : begin + 11])
            pos = begin + 11
            continue
        end_marker = f"-----END {m.group(1)}PRIVATE KEY{m.group(2) or ''}-----"
        end = text.find(end_marker, m.end())
        out.append(text[pos:begin])
        out.append(MARKERS["PRIVATE_KEY"])
        counts["PRIVATE_KEY"] = counts.get("PRIVATE_KEY", 0) + 1
        if end < 0:
            pos = len(text)
            break
        pos = end + len(end_marker)
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


class Masker:
    """Masks text and attribute maps under one tenant's :class:`MaskRules`.

    >>> counts: dict[str, int] = {}
    >>> Masker(MaskRules()).mask("mail bob@example.com from 10.0.0.1", counts), counts
    ('mail [EMAIL] from [IP]', {'EMAIL': 1, 'IP': 1})
    """

    def __init__(self, settings: MaskRules) -> None:
        self.settings = settings
        keys = tuple(k.lower() for k in settings.secret_keys)
        self._secret_keys = keys
        self._secret_key_set = frozenset(keys)
        self._secret_re: re.Pattern[str] | None = None
        if settings.secrets and keys:
            alt = "|".join(sorted((re.escape(k) for k in keys), key=len, reverse=True))
            # `password=x`, `"token": "x"`, `secret: x`; the value ends at whitespace, a separator or
            # a closing quote, so the rest of the line survives.
            self._secret_re = re.compile(
                r"(?i)((?:" + alt + r")[\w\-.]{0,32}[\"']?[ \t]{0,8}[=:][ \t]{0,8})"
                r"((?:bearer|basic)\s+[^\s,;&\"']{1,4096}|\"[^\"]{0,4096}\"|'[^']{0,4096}'"
                r"|[^\s,;&\"'}\]]{1,4096})"
            )
        self._secret_key_cache: dict[str, bool] = {}
        # 0 plain, 1 phone-labelled, 2 secret, 3 SSN-labelled; | 4 when the key itself holds PII
        self._key_cache: dict[str, int] = {}
        self._masked_key_cache: dict[str, tuple[str, tuple[tuple[str, int], ...]]] = {}
        self._host_cache: dict[str, tuple[str, tuple[tuple[str, int], ...]]] = {}
        self._value_cache: dict[tuple[str, int], tuple[str, tuple[tuple[str, int], ...]]] = {}
        self._custom = [(r.name, re.compile(r.regex), r.marker) for r in settings.custom]
        self._digits_on = settings.card or settings.ssn or settings.phone or settings.ipv4 or settings.iban

    # The callback for the shared digit regex; returns the replacement and counts what it masked.
    def _digits_cb(
        self, counts: dict[str, int], phone_context: bool = False, ssn_context: bool = False
    ) -> Callable[[re.Match[str]], str]:
        s = self.settings

        def repl(m: re.Match[str]) -> str:
            text = m.string
            kind = m.lastgroup
            start = m.start()
            value = m.group()
            if kind == "ssn":
                if s.ssn and _valid_ssn(value):
                    counts["SSN"] = counts.get("SSN", 0) + 1
                    return MARKERS["SSN"]
                return value
            if kind == "ssn9":
                if (
                    s.ssn
                    and _valid_ssn(value)
                    and (ssn_context or _SSN_CONTEXT.search(text, max(0, start - 24), start))
                ):
                    counts["SSN"] = counts.get("SSN", 0) + 1
                    return MARKERS["SSN"]
                if s.phone and phone_context and value.isdigit():
                    counts["PHONE"] = counts.get("PHONE", 0) + 1
                    return MARKERS["PHONE"]
                return value
            if kind == "iban":
                # The greedy match may have run on into an upper-case word after a space.
                candidate = value
                while s.iban:
                    if iban_ok(candidate):
                        counts["IBAN"] = counts.get("IBAN", 0) + 1
                        return MARKERS["IBAN"] + value[len(candidate) :]
                    cut = candidate.rfind(" ")
                    if cut < 15:
                        break
                    candidate = candidate[:cut]
                return value
            if kind == "gcard" or kind == "gcard2":
                if s.card and luhn_ok(value):
                    counts["CARD"] = counts.get("CARD", 0) + 1
                    return MARKERS["CARD"]
                return value
            if kind == "card":
                digits = value.replace(" ", "").replace("-", "")
                if s.card and 13 <= len(digits) <= 19 and luhn_ok(digits):
                    counts["CARD"] = counts.get("CARD", 0) + 1
                    return MARKERS["CARD"]
                if s.phone and _PHONE_FULL.fullmatch(value):
                    counts["PHONE"] = counts.get("PHONE", 0) + 1
                    return MARKERS["PHONE"]
                return value
            if kind == "phone":
                if s.phone and (
                    phone_context
                    or not value.isdigit()
                    or _PHONE_CONTEXT.search(text, max(0, start - 24), start)
                ):
                    counts["PHONE"] = counts.get("PHONE", 0) + 1
                    return MARKERS["PHONE"]
                return value
            if kind == "ip" and s.ipv4:
                before = text[max(0, start - 8) : start].lower()
                if "version" in before or "ver " in before:
                    return value
                counts["IP"] = counts.get("IP", 0) + 1
                return MARKERS["IP"]
            return value

        return repl

    def _ipv6_cb(self, counts: dict[str, int]) -> Callable[[re.Match[str]], str]:
        def repl(m: re.Match[str]) -> str:
            value = m.group()
            text = m.string
            start, end = m.span()
            if (start and (text[start - 1] in _WORD_CHARS or text[start - 1] == ":")) or (
                end < len(text) and text[end] in _WORD_CHARS
            ):
                return value
            if value.count(":") < 2 or ("::" not in value and value.count(":") < 7):
                return value
            try:
                ipaddress.IPv6Address(value.split("%", 1)[0])
            except ValueError:
                return value
            counts["IP"] = counts.get("IP", 0) + 1
            return MARKERS["IP"]

        return repl

    def mask(
        self, text: str, counts: dict[str, int], phone_context: bool = False, ssn_context: bool = False
    ) -> str:
        """``text`` with every enabled kind replaced by its marker; ``counts`` is updated in place.
        ``phone_context`` (``ssn_context``) says the text is known to be a phone (SSN) field: bare
        digits are then masked."""
        s = self.settings
        if len(text) < 6:  # shorter than any maskable value ("a@b.co", "1.1.1.1", "pwd=x")
            return text
        if s.secrets:
            if "-----BEGIN " in text:
                text = mask_private_keys(text, counts)
            # Before e-mails: `user:pass@db.example.com` would otherwise become `user:[EMAIL]`,
            # which hides the password but also the host.
            if "://" in text and "@" in text:
                text, n = _URL_CREDENTIALS.subn(r"\1[REDACTED]@", text)
                if n:
                    counts["SECRET"] = counts.get("SECRET", 0) + n
        if self._secret_re is not None and ("=" in text or ":" in text):
            low = text.lower()
            for k in self._secret_keys:
                if k in low:
                    break
            else:
                low = ""
            if low:
                text, n = self._secret_re.subn(r"\1[REDACTED]", text)
                if n:
                    counts["SECRET"] = counts.get("SECRET", 0) + n
        if s.bearer:
            if "earer" in text or "EARER" in text:
                text, n = _BEARER.subn(r"\1[TOKEN]", text)
                if n:
                    counts["TOKEN"] = counts.get("TOKEN", 0) + n
            if "eyJ" in text:
                text, n = _JWT.subn("[TOKEN]", text)
                if n:
                    counts["TOKEN"] = counts.get("TOKEN", 0) + n
        if s.bearer and _token_hint(text):
            text = _PREFIXED_TOKEN.sub(_token_repl(counts), text)
        if s.aws_keys and ("AKIA" in text or "ASIA" in text or "AROA" in text or "AIDA" in text):
            text, n = _AWS.subn(MARKERS["AWS_KEY"], text)
            if n:
                counts["AWS_KEY"] = counts.get("AWS_KEY", 0) + n
        if s.email and "@" in text:
            text, n = _EMAIL.subn(MARKERS["EMAIL"], text)
            if n:
                counts["EMAIL"] = counts.get("EMAIL", 0) + n
        if s.ipv6 and ("::" in text or text.count(":") >= 7):
            text = _IPV6.sub(self._ipv6_cb(counts), text)
        if self._digits_on and _HAS_DIGIT.search(text):
            repl = self._digits_cb(counts, phone_context, ssn_context)
            text = _DIGITS.sub(repl, text)
            if s.card and _THIRTEEN_DIGITS.search(text):
                text = _GLUED_CARD.sub(repl, text)
        for name, regex, marker in self._custom:
            text, n = regex.subn(marker, text)
            if n:
                counts[name] = counts.get(name, 0) + n
        return text

    def is_secret_key(self, key: str) -> bool:
        cached = self._secret_key_cache.get(key)
        if cached is None:
            low = key.lower()
            cached = low in self._secret_key_set or any(k in low for k in self._secret_keys)
            if len(self._secret_key_cache) < 10_000:
                self._secret_key_cache[key] = cached
        return cached

    def mask_host(self, host: str, counts: dict[str, int]) -> str:
        """The record's host with PII masked; hosts are few and repeat, so the result is kept."""
        cached = self._host_cache.get(host)
        if cached is None:
            found: dict[str, int] = {}
            cached = (self.mask(host, found), tuple(found.items()))
            if len(self._host_cache) >= 10_000:
                self._host_cache.clear()
            self._host_cache[host] = cached
        masked, found_items = cached
        for name, n in found_items:
            counts[name] = counts.get(name, 0) + n
        return masked

    def mask_key(self, key: str, counts: dict[str, int]) -> str:
        """An attribute key with the PII in it masked (``user.bob@example.com`` ->
        ``user.[EMAIL]``); keys are few and repeat, so the result is remembered."""
        cached = self._masked_key_cache.get(key)
        if cached is None:
            found: dict[str, int] = {}
            # An RFC 5424 structured-data id (`exampleSDID@32473.eventID`) is shaped like an
            # e-mail address but names a vendor's parameter: only what follows it is masked.
            sd_id = _SD_ID_PREFIX.match(key)
            cut = sd_id.end() if sd_id else 0
            rest = key[cut:]
            masked = self.mask(rest, found)
            if masked == rest and len(rest) <= 1024:
                # Flattening joins names with dots, and the digit kinds refuse a value glued to a
                # dot (versions): `by_ip.10.0.0.7` is tried again after each of its first dots.
                dot = rest.find(".")
                for _ in range(16):
                    if dot < 0 or len(rest) - dot <= 6:
                        break
                    tail = rest[dot + 1 :]
                    masked_tail = self.mask(tail, found)
                    if masked_tail != tail:
                        masked = rest[: dot + 1] + masked_tail
                        break
                    dot = rest.find(".", dot + 1)
            cached = (key[:cut] + masked, tuple(found.items()))
            if len(self._masked_key_cache) >= 10_000:
                self._masked_key_cache.clear()
            self._masked_key_cache[key] = cached
        masked, found_items = cached
        for name, n in found_items:
            counts[name] = counts.get(name, 0) + n
        return masked

    def mask_attributes(self, attrs: dict[str, str], counts: dict[str, int]) -> dict[str, str]:
        """Masks values in place: whole values under secret-looking keys, PII inside the others.
        Returns ``attrs``, or a new dict when a key itself held PII and was masked too."""
        secrets = self.settings.secrets
        key_kinds = self._key_cache
        values = self._value_cache
        renamed = False
        for key, value in attrs.items():
            kind = key_kinds.get(key)
            if kind is None:
                if secrets and self.is_secret_key(key):
                    kind = 2
                elif _PHONE_CONTEXT.search(key):
                    kind = 1
                elif _SSN_CONTEXT.search(key):
                    kind = 3
                else:
                    kind = 0
                if len(key) >= 6 and self.mask_key(key, {}) != key:
                    kind |= 4  # the key itself holds PII
                if len(key_kinds) >= 10_000:
                    key_kinds.clear()
                key_kinds[key] = kind
            if kind & 4:
                renamed = True
                kind &= 3
            if kind == 2:
                if value and value != MARKERS["SECRET"]:
                    attrs[key] = MARKERS["SECRET"]
                    counts["SECRET"] = counts.get("SECRET", 0) + 1
                continue
            if len(value) < 6:
                continue
            # Attribute values repeat (methods, statuses, paths, agents): remember what masking
            # made of each, so a repeat costs a dict lookup instead of the regex passes.
            hit = values.get((value, kind))
            if hit is None:
                found: dict[str, int] = {}
                hit = (self.mask(value, found, kind == 1, kind == 3), tuple(found.items()))
                if len(value) <= 256:  # bounded memory: 50k short values, never stack traces
                    if len(values) >= 50_000:
                        values.clear()
                    values[(value, kind)] = hit
            masked, found_items = hit
            if found_items:
                attrs[key] = masked
                for name, n in found_items:
                    counts[name] = counts.get(name, 0) + n
        if not renamed:
            return attrs
        out: dict[str, str] = {}
        for key, value in attrs.items():
            if key_kinds.get(key, 0) & 4:
                key = self.mask_key(key, counts)
                # Two keys that mask alike (`user.a@x.io`, `user.b@y.io`) both keep their value.
                base, n = key, 1
                while key in out:
                    n += 1
                    key = f"{base}~{n}"
            out.setdefault(key, value)
        return out
