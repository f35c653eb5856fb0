"""Refang, check and canonicalize indicator values, so that dedupe compares like with like.

``normalize(type, value)`` returns the canonical form or raises :class:`Rejected` with a reason a
person can act on ("ipv4: 999.1.1.1 is not an IPv4 address"). ``detect(value)`` tells the type
of a value from its shape, for feeds that mix types.
"""

import ipaddress
import re
from collections.abc import Callable
from urllib.parse import quote, urlsplit

import idna

from exchange.models.store import MAX_VALUE_LENGTH, IndicatorType

TYPES = tuple(IndicatorType.values)


class Rejected(ValueError):
    """A value that fails its type's check; ``str()`` is the reason."""


def _show(value: str) -> str:
    return value if len(value) <= 120 else value[:117] + "..."


# Defanging conventions seen in reports and feeds: hxxp://, [.], (dot), [:]//, [at], ...
_DEFANGED_SCHEME = re.compile(r"^h[x*]{2}p(s?)(?=[\[:])", re.IGNORECASE)
_DEFANGED_FTP = re.compile(r"^fxp(s?)(?=[\[:])", re.IGNORECASE)
_BRACKETED = re.compile(r"\s*[\[({]\s*(\.|dot|:|://|/|@|at)\s*[\])}]\s*", re.IGNORECASE)
_BRACKET_MEANING = {".": ".", "dot": ".", ":": ":", "://": "://", "/": "/", "@": "@", "at": "@"}


def _unbracket(text: str) -> str:
    # With no white space for the pattern to take along, "[.]" (the usual defanging) is just ".";
    # what else is bracketed takes the pattern.
    if "[.]" in text and " " not in text and text.isprintable():  # isprintable: no other white space
        plain = text.replace("[.]", ".")
        if "[" not in plain and "(" not in plain and "{" not in plain:
            return plain
    return _BRACKETED.sub(lambda m: _BRACKET_MEANING[m.group(1).lower()], text)


def refang(value: str) -> str:
    """Undo the usual defanging (``hxxp``, ``[.]``, ``(dot)``, ``[:]``, ``[at]``, ``\\.``)."""
    text = value.strip()
    if "[" in text or "(" in text or "{" in text:
        text = _unbracket(text)
    if "\\." in text:
        text = text.replace("\\.", ".")
    # Only a scheme whose second letter is not a "t" can be a defanged one (hxxp, h**p, fxp).
    if text[:1] in ("h", "H"):
        if text[1:2] not in ("t", "T"):
            text = _DEFANGED_SCHEME.sub(lambda m: "http" + m.group(1), text)
    elif text[:1] in ("f", "F") and text[1:2] not in ("t", "T"):
        text = _DEFANGED_FTP.sub(lambda m: "ftp" + m.group(1), text)
    return text


def _hash(kind: str, label: str, length: int) -> Callable[[str], str]:
    hexdigits = re.compile(r"[0-9a-fA-F]+")

    def check(value: str) -> str:
        if len(value) == length and hexdigits.fullmatch(value):
            return value.lower()
        if not hexdigits.fullmatch(value):
            raise Rejected(f"{kind}: {_show(value)} is not {label} hash (hex digits only)")
        raise Rejected(f"{kind}: {_show(value)} is not {label} hash ({length} hex digits, not {len(value)})")

    return check


_CANONICAL_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                             r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")


def ipv4(value: str) -> str:
    if _CANONICAL_IPV4.fullmatch(value):
        return value
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise Rejected(f"ipv4: {_show(value)} is not an IPv4 address") from None


def ipv6(value: str) -> str:
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    if "%" in bare:
        raise Rejected(f"ipv6: {_show(value)} has a zone index, which is local to one host")
    try:
        return ipaddress.IPv6Address(bare).compressed
    except ValueError:
        raise Rejected(f"ipv6: {_show(value)} is not an IPv6 address") from None


def cidr(value: str) -> str:
    if "%" in value:
        raise Rejected(f"cidr: {_show(value)} has a zone index, which is local to one host")
    try:
        return ipaddress.ip_network(value, strict=True).compressed
    except ValueError as exc:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise Rejected(f"cidr: {_show(value)} is not a CIDR block ({exc})") from None
        raise Rejected(f"cidr: {_show(value)} has host bits set (the block is {network.compressed})") from None


_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


_ASCII_NAME_PATTERN = r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_ASCII_NAME = re.compile(_ASCII_NAME_PATTERN)


def _host_name(kind: str, value: str) -> str:
    if value.isascii():  # the common case, in one regex; anything doubtful takes the path below
        name = value.lower()
        if name.endswith("."):
            name = name[:-1]
        if len(name) <= 253 and _ASCII_NAME.fullmatch(name) and not name.rpartition(".")[2].isdigit():
            return name
    return _host_name_checked(kind, value)


def _host_name_checked(kind: str, value: str) -> str:
    try:
        labels = _labels(value)
    except idna.IDNAError as exc:
        raise Rejected(f"{kind}: {_show(value)} is not a valid internationalized name ({exc})") from None
    name = ".".join(labels)
    if not name:
        raise Rejected(f"{kind}: empty name")
    if labels[0] == "*" and len(labels) > 1:
        raise Rejected(f"{kind}: {_show(value)} is a wildcard, not a name")
    if len(name) > 253:
        raise Rejected(f"{kind}: {_show(value)} is longer than 253 characters")
    if len(labels) < 2:
        raise Rejected(f"{kind}: {_show(value)} is not a fully qualified name (it has no dot)")
    for label in labels:
        if len(label) > 63:
            raise Rejected(f"{kind}: {_show(value)} has a label longer than 63 characters")
        if not _LABEL.fullmatch(label):
            shown = label if label else "(empty)"
            raise Rejected(f"{kind}: {_show(value)} has an invalid label {shown!r}")
    if labels[-1].isdigit():
        raise Rejected(f"{kind}: {_show(value)} is an IP address or ends in a numeric label, not a name")
    return name


def _labels(value: str) -> list[str]:
    # UTS #46 maps the whole name (upper case, full-width dots), but only non-ASCII labels go through
    # IDNA, which refuses the underscores that real malicious names use ("my_site.bücher.example").
    name = value.lower() if value.isascii() else idna.uts46_remap(value, std3_rules=False)
    name = name[:-1] if name.endswith(".") else name
    return [label if label.isascii() else idna.alabel(label).decode("ascii") for label in name.split(".")]


def domain(value: str) -> str:
    return _host_name("domain", value)


def hostname(value: str) -> str:
    return _host_name("hostname", value)


_LOCAL_PART = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*", re.IGNORECASE)


def email(value: str) -> str:
    text = value[7:] if value[:7].lower() == "mailto:" else value
    local, at, host = text.rpartition("@")
    if not at or not local:
        raise Rejected(f"email: {_show(value)} is not an email address (no local part and @)")
    if len(local) > 64:
        raise Rejected(f"email: {_show(value)} has a local part longer than 64 characters")
    if not _LOCAL_PART.fullmatch(local):
        raise Rejected(f"email: {_show(value)} has an invalid local part {_show(local)!r}")
    try:
        host = _host_name("email", host)
    except Rejected as exc:
        raise Rejected(f"email: {_show(value)} has an invalid domain ({str(exc).split(': ', 1)[1]})") from None
    return f"{local.lower()}@{host}"


_URL_SCHEMES = {"http": 80, "https": 443, "ftp": 21, "ftps": 990}
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?[]"
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


# A URL made only of ASCII characters that need no encoding, with a host name whose labels are
# well formed, without user info or fragment: most of them. It is canonicalized without urlsplit,
# quote and the host checks, with the same result (tests compare).
_PLAIN_URL = re.compile(
    rf"(https?|ftps?)://({_ASCII_NAME_PATTERN}\.?)(?::([0-9]{{1,5}}))?(/[a-z0-9/%:@!$&'()*+,;=._~-]*)?"
    r"(?:\?([a-z0-9/%:@!$&'()*+,;=._~?\[\]-]*))?",
    re.IGNORECASE | re.ASCII,
)


def url(value: str) -> str:
    if len(value) > MAX_VALUE_LENGTH:
        raise Rejected(f"url: {_show(value)} is longer than {MAX_VALUE_LENGTH} characters")
    plain = _PLAIN_URL.fullmatch(value)
    if plain is not None:
        scheme, host, port, path, query = plain.groups()
        scheme = scheme.lower()
        if port is None or int(port) <= 65535:
            host = host.lower()
            name = host[:-1] if host.endswith(".") else host
            # The pattern checked the labels; what is left: an address (a numeric last label) or a long name.
            host = _url_host(value, host, bracketed=False) if len(name) > 253 or name[-1].isdigit() else name
            if port is not None and int(port) != _URL_SCHEMES[scheme]:
                host = f"{host}:{int(port)}"
            result = f"{scheme}://{host}{path or '/'}" + (f"?{query}" if query else "")
            if len(result) <= MAX_VALUE_LENGTH:
                return result
    return _url_parsed(value)


def _url_parsed(value: str) -> str:
    text = value
    scheme = _SCHEME.match(text)
    rest = text[scheme.end():] if scheme else ""
    if scheme is None or rest[:1].isdigit():
        # No scheme, or "host:port/...": the web's default.
        text = "http://" + text.lstrip("/")
    elif not rest.startswith("//"):
        if scheme.group(1).lower() in _URL_SCHEMES:
            raise Rejected(f"url: {_show(value)} is not a URL (no // after {scheme.group(1)}:)")
        raise Rejected(f"url: {_show(value)} has an unsupported scheme {scheme.group(1)!r} (http, https, ftp)")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise Rejected(f"url: {_show(value)} is not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in _URL_SCHEMES:
        raise Rejected(f"url: {_show(value)} has an unsupported scheme {parts.scheme!r} (http, https, ftp)")
    netloc = parts.netloc
    userinfo, _, hostport = netloc.rpartition("@")
    host = parts.hostname or ""
    if not host:
        raise Rejected(f"url: {_show(value)} has no host")
    if any(char.isspace() for char in hostport):
        raise Rejected(f"url: {_show(value)} has white space in its host")
    host = _url_host(value, host, bracketed=hostport.startswith("["))
    if port is not None and port != _URL_SCHEMES[scheme]:
        host = f"{host}:{port}"
    path = quote(parts.path, safe=_PATH_SAFE) or "/"
    query = quote(parts.query, safe=_QUERY_SAFE)
    prefix = f"{userinfo}@" if userinfo else ""
    result = f"{scheme}://{prefix}{host}{path}" + (f"?{query}" if query else "")
    if len(result) > MAX_VALUE_LENGTH:
        raise Rejected(f"url: {_show(value)} is longer than {MAX_VALUE_LENGTH} characters once encoded")
    return result


_DOTTED_NUMBERS = re.compile(r"[0-9.]+")


def _url_host(value: str, host: str, bracketed: bool) -> str:
    if bracketed:
        if "%" in host:
            raise Rejected(f"url: {_show(value)} has a zone index in its IPv6 host, which is local to one host")
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            raise Rejected(f"url: {_show(value)} has an invalid IPv6 host {host!r}") from None
    if _DOTTED_NUMBERS.fullmatch(host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise Rejected(f"url: {_show(value)} has an invalid IPv4 host {host!r}") from None
    try:
        return _host_name("url", host)
    except Rejected as exc:
        raise Rejected(f"url: {_show(value)} has an invalid host ({str(exc).split(': ', 1)[1]})") from None


_CHECKS: dict[str, Callable[[str], str]] = {
    "url": url,
    "domain": domain,
    "hostname": hostname,
    "ipv4": ipv4,
    "ipv6": ipv6,
    "cidr": cidr,
    "md5": _hash("md5", "an MD5", 32),
    "sha1": _hash("sha1", "a SHA-1", 40),
    "sha256": _hash("sha256", "a SHA-256", 64),
    "email": email,
}


_HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]+")


def normalize(type_: str, value) -> str:
    """The canonical form of ``value`` as a ``type_`` indicator, or :class:`Rejected`."""
    # A hash of the right length and nothing but hex digits needs no refanging: only lower case.
    if type(value) is str and _HASH_LENGTHS.get(type_) == len(value) and _HEX_DIGITS.fullmatch(value):
        return value.lower()
    check = _CHECKS.get(type_)
    if check is None:
        raise Rejected(f"{type_}: not an indicator type (one of {', '.join(TYPES)})")
    text = refang(value if isinstance(value, str) else str(value))
    if not text:
        raise Rejected(f"{type_}: empty value")
    if "\x00" in text:
        raise Rejected(f"{type_}: {_show(text)!r} contains a NUL character")
    return check(text)


_HASH_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256"}
_HEX = re.compile(r"[0-9a-fA-F]+")
_IP_CHARS = re.compile(r"[0-9a-fA-F:.\[\]]+")
_DOTTED_QUAD = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
# An address and a prefix of up to three digits: a bad block ("10.0.0.0/33"), not a URL without scheme.
_CIDR_SHAPE = re.compile(r"(?:[0-9]+(?:\.[0-9]+){3}|[0-9a-fA-F.]*:[0-9a-fA-F:.]*)/[0-9]{1,3}")


def detect(value) -> str:
    """The indicator type a value looks like; :class:`Rejected` when it looks like none."""
    text = refang(value if isinstance(value, str) else str(value))
    if not text:
        raise Rejected("detect: empty value")
    kind = _HASH_BY_LENGTH.get(len(text))
    if kind and _HEX.fullmatch(text):
        return kind
    if any(char.isspace() for char in text):
        raise Rejected(f"detect: {_show(text)} has white space inside, which no indicator value has")
    if _IP_CHARS.fullmatch(text):
        try:
            return "ipv4" if ipaddress.ip_address(text.strip("[]")).version == 4 else "ipv6"
        except ValueError:
            pass
    if _DOTTED_QUAD.fullmatch(text):
        return "ipv4"
    if "/" in text and "://" not in text:
        try:
            ipaddress.ip_network(text, strict=False)
            return "cidr"
        except ValueError:
            pass
    if _CIDR_SHAPE.fullmatch(text):
        return "cidr"
    if "@" in text and "/" not in text:
        return "email"
    if "/" in text or _SCHEME.match(text) and "://" in text:
        return "url"
    if "." in text:
        return "domain"
    raise Rejected(f"detect: {_show(text)} is not a hash, IP address, CIDR block, email address, URL or domain")


def normalize_any(type_: str | None, value) -> tuple[str, str]:
    """``(type, canonical value)``, detecting the type when ``type_`` is empty."""
    kind = type_ or detect(value)
    return kind, normalize(kind, value)
