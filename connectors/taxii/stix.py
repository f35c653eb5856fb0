"""Indicators out: STIX 2.1 indicator objects, built with ``stix2``, and envelopes within a size.

Each value has one object id, ``indicator--<UUIDv5 of (type, value)>`` under a fixed namespace,
so a later push of the same value is a new version of the same object (a later ``modified``),
never a duplicate. What an object holds:

- ``pattern``: ``[url:value = '...']``, ``[domain-name:value = ...]`` (domains and host names),
  ``[ipv4-addr:value = ...]`` / ``[ipv6-addr:value = ...]`` (CIDRs too), ``[email-addr:value =
  ...]``, ``[file:hashes.MD5 = ...]``, ``[file:hashes.'SHA-1' = ...]``, ``[file:hashes.'SHA-256'
  = ...]``, the value's quotes and backslashes escaped, and the pattern checked by stix2;
- ``created`` and ``valid_from``: the first time the value was seen; ``modified``: the push
  (a changed reputation or tag with an unchanged last-seen is still a new version);
- ``valid_until``: the indicator's expiry; ``confidence``: the reputation times ten (1 -> 10,
  10 -> 100: the pull maps it back to the same reputation); ``labels``: the tags;
  ``description``: the comments; ``name``: the value.
"""

import json
import uuid
from collections.abc import Iterator
from datetime import datetime

import stix2
from stix2.exceptions import STIXError

from connectors.base import Outbound

#: Never change: the ids of everything already shared derive from it.
NAMESPACE = uuid.UUID("6f1c8a52-3d0e-5b7f-9a44-2c8e1d7b0c3a")
PATHS = {
    "url": "url:value", "domain": "domain-name:value", "hostname": "domain-name:value",
    "ipv4": "ipv4-addr:value", "ipv6": "ipv6-addr:value", "email": "email-addr:value",
    "md5": "file:hashes.MD5", "sha1": "file:hashes.'SHA-1'", "sha256": "file:hashes.'SHA-256'",
}
TYPES = ("url", "domain", "hostname", "ipv4", "ipv6", "cidr", "md5", "sha1", "sha256", "email")
_OPEN, _CLOSE = b'{"objects":[', b"]}"
ENVELOPE = len(_OPEN) + len(_CLOSE)  # bytes an envelope adds to its objects


def object_id(type_: str, value: str, generation: int = 0) -> str:
    """The object id of a value. STIX revocation is final: a value shared again after it was
    revoked (its ``generation``-th retraction) is a new object."""
    name = f"{type_}:{value}" if not generation else f"{type_}:{value}#{generation}"
    return f"indicator--{uuid.uuid5(NAMESPACE, name)}"


def pattern(type_: str, value: str) -> str:
    """The STIX pattern for one value (a ValueError for a type it has no path for)."""
    path = PATHS.get(type_)
    if type_ == "cidr":
        path = PATHS["ipv6"] if ":" in value else PATHS["ipv4"]
    if path is None:
        raise ValueError(f"no STIX pattern for the type {type_!r}")
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"[{path} = '{escaped}']"


def indicator(item: Outbound, now: datetime) -> dict:
    """The STIX 2.1 indicator object for ``item``; ValueError (with stix2's reason) if it cannot be one."""
    created = min(item.first_seen or now, now)
    fields = {
        "id": object_id(item.type, item.value, item.generation), "created": created, "modified": now,
        "valid_from": created,
        "name": item.value, "pattern": pattern(item.type, item.value), "pattern_type": "stix",
        "confidence": min(max(int(item.reputation or 5), 1), 10) * 10,
    }
    if item.expires_at and item.expires_at > created:
        fields["valid_until"] = item.expires_at
    if item.tags:
        fields["labels"] = list(item.tags)
    if item.comments:
        fields["description"] = item.comments
    try:
        return json.loads(stix2.v21.Indicator(**fields).serialize())
    except (STIXError, ValueError) as exc:  # stix2's own checks: the pattern, valid_until after valid_from
        raise ValueError(f"not a valid STIX indicator: {exc}") from None


def revoked(current: dict) -> dict:
    """The next version of ``current`` (an object as the server holds it), revoked."""
    try:
        return json.loads(stix2.parse(current, allow_custom=True).revoke().serialize())
    except (STIXError, ValueError) as exc:
        raise ValueError(f"the shared object cannot be revoked: {exc}") from None


def encoded(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def envelopes(objects: list[tuple[str, bytes]], max_bytes: int) -> Iterator[tuple[list[str], bytes]]:
    """``(keys, body)`` envelopes of ``(key, encoded object)`` pairs, each body at most
    ``max_bytes`` long (an object too large for any envelope comes alone)."""
    keys: list[str] = []
    parts: list[bytes] = []
    size = len(_OPEN) + len(_CLOSE)
    for item, body in objects:
        grown = size + len(body) + (1 if parts else 0)
        if parts and grown > max_bytes:
            yield keys, _OPEN + b",".join(parts) + _CLOSE
            keys, parts, size = [], [], len(_OPEN) + len(_CLOSE)
            grown = size + len(body)
        keys.append(item)
        parts.append(body)
        size = grown
    if parts:
        yield keys, _OPEN + b",".join(parts) + _CLOSE
