"""MISP's rules as the fake applies them: attribute validation (AttributeValidationTool and the
Attribute model's rules), restSearch filters, and the shapes of its error answers."""

import ipaddress
import re
import time
from datetime import datetime

AUTH_FAILED = ("Authentication failed. Please make sure you pass the API key of an API enabled user along in the "
               "Authorization header.")
DEFAULT_CATEGORY = {"md5": "Payload delivery", "sha1": "Payload delivery", "sha256": "Payload delivery",
                    "filename|md5": "Payload delivery", "filename|sha1": "Payload delivery",
                    "filename|sha256": "Payload delivery", "malware-sample": "Payload delivery",
                    "email-src": "Payload delivery", "regkey": "Persistence mechanism", "text": "Other",
                    "comment": "Other", "vulnerability": "External analysis", "filename": "Payload delivery"}
NETWORK_TYPES = ("url", "uri", "domain", "hostname", "ip-src", "ip-dst", "ip-src|port", "ip-dst|port",
                 "hostname|port", "domain|ip", "email", "email-dst", "port", "AS")
CATEGORIES = ("Internal reference", "Targeting data", "Antivirus detection", "Payload delivery", "Artifacts dropped",
              "Payload installation", "Persistence mechanism", "Network activity", "Payload type", "Attribution",
              "External analysis", "Financial fraud", "Support Tool", "Social network", "Person", "Other")
_HASH = {"md5": 32, "sha1": 40, "sha256": 64}
_DOMAIN = re.compile(r"^[A-Z0-9.\-_]+\.[A-Z0-9\-]{2,}$", re.IGNORECASE)
_EMAIL = re.compile(r"^.[^\s]*@.*\..*$", re.IGNORECASE)


def _ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def _port(value: str) -> bool:
    return value.isdigit() and 1 <= int(value) <= 65535


def validate_value(kind: str, value: str) -> str | None:
    """MISP's AttributeValidationTool::validate for the types the fake knows: None or the message."""
    if kind in _HASH:
        ok = re.fullmatch(f"[0-9a-f]{{{_HASH[kind]}}}", value)
        return None if ok else (f"Checksum has an invalid length or format (expected: {_HASH[kind]} hexadecimal "
                                'characters). Please double check the value or select type "other".')
    if kind.startswith("filename|") or kind == "malware-sample":
        length = _HASH[kind.split("|")[1] if "|" in kind else "md5"]
        ok = re.fullmatch(rf".+\|[0-9a-f]{{{length}}}", value)
        return None if ok else (f"Checksum has an invalid length or format (expected: filename|{length} hexadecimal "
                                'characters). Please double check the value or select type "other".')
    if kind in ("ip-src", "ip-dst"):
        address, _, prefix = value.partition("/")
        if prefix and not (prefix.isdigit() and int(prefix) <= (32 if "." in address else 128)):
            return "Invalid CIDR notation value found."
        return None if _ip(address) else "IP address has an invalid format."
    if kind in ("ip-src|port", "ip-dst|port", "hostname|port", "domain|ip"):
        first, _, second = value.partition("|")
        if not (_DOMAIN.match(first) if kind in ("hostname|port", "domain|ip") else _ip(first)):
            return {"domain|ip": "Domain", "hostname|port": "Hostname"}.get(kind, "IP address") + \
                " has an invalid format."
        if kind == "domain|ip":
            return None if _ip(second) else "IP address has an invalid format."
        return None if _port(second) else "Port numbers have to be integers between 1 and 65535."
    if kind in ("domain", "hostname"):
        return None if _DOMAIN.match(value) else \
            f'{kind.capitalize()} has an invalid format. Please double check the value or select type "other".'
    if kind in ("email", "email-src", "email-dst"):
        return None if _EMAIL.match(value) else \
            'Email address has an invalid format. Please double check the value or select type "other".'
    return "Value must not contain new line character." if "\n" in value else None


def attribute_errors(existing: list[dict], attribute) -> dict:
    """MISP's validation of one attribute to add to an event holding ``existing``: {} or field errors."""
    if not isinstance(attribute, dict) or not attribute.get("type"):
        return {"type": ["Options depend on the selected category."]}
    kind, value = attribute["type"], str(attribute.get("value") or "")
    if kind not in DEFAULT_CATEGORY and kind not in NETWORK_TYPES:
        return {"type": ["Options depend on the selected category."]}
    if attribute.get("category") and attribute["category"] not in CATEGORIES:
        return {"category": ["Options : " + ", ".join(CATEGORIES)]}
    if kind in _HASH or kind in ("domain", "hostname") or kind.startswith("filename|"):
        value = value.lower()  # MISP's modifyBeforeValidation
    problem = "Value not in the right type/format." if not value else validate_value(kind, value)
    if problem:
        return {"value": [problem]}
    for name in ("first_seen", "last_seen"):
        if attribute.get(name) and not iso(attribute[name]):
            return {name: ["Invalid ISO 8601 format"]}
    if any(a["type"] == kind and a["value"] == value and not a["deleted"] for a in existing):
        return {"value": ["A similar attribute already exists for this event."]}
    attribute["value"] = value
    return {}


def error(message: str, url: str) -> dict:
    return {"name": message, "message": message, "url": url}


def refusal(model: str, url: str, errors) -> dict:
    """RestResponseComponent::saveFailResponse."""
    return {"saved": False, "name": f"Could not add {model}", "message": f"Could not add {model}", "url": url,
            "errors": errors}


def true(value) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def iso(value) -> bool:
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def since(value) -> int:
    """A restSearch time: epoch seconds, or "5d" / "12h" / "30m" before now."""
    text = str(value).strip()
    match = re.fullmatch(r"(\d+)([dhm])", text)
    if match:
        return int(time.time()) - int(match[1]) * {"d": 86400, "h": 3600, "m": 60}[match[2]]
    return int(text)


def matches(attribute: dict, event: dict, query: dict) -> bool:
    """Does ``attribute`` (of ``event``) pass the restSearch filters of ``query``?"""
    types = query.get("type")
    if types and attribute["type"] not in ([types] if isinstance(types, str) else types):
        return False
    if "to_ids" in query and attribute["to_ids"] != true(query["to_ids"]):
        return False
    if attribute["deleted"] != true(query.get("deleted", False)):
        return False
    if "published" in query and event["published"] != true(query["published"]):
        return False
    stamp = query.get("timestamp", query.get("attribute_timestamp"))
    if stamp is not None:
        low, high = (since(stamp[0]), since(stamp[1])) if isinstance(stamp, list) else (since(stamp), None)
        if attribute["timestamp"] < low or (high is not None and attribute["timestamp"] > high):
            return False
    tags = query.get("tags") or []
    names = set(attribute["tags"]) | set(event["tags"])
    wanted = [tag for tag in ([tags] if isinstance(tags, str) else tags) if not tag.startswith("!")]
    if any(tag.startswith("!") and tag[1:] in names for tag in ([tags] if isinstance(tags, str) else tags)):
        return False
    return not wanted or bool(names & set(wanted))

