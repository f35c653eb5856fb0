"""MISP attributes to CTE records and CTE indicators to MISP attributes.

Pull: an attribute gives no record, one, or two (``domain|ip`` gives both parts).

- A MISP type CTE does not hold (``text``, ``regkey``, ``vulnerability``, ...) gives none: it is
  not an indicator. So does a deleted attribute (or one of a deleted object), an attribute with
  ``to_ids`` off unless the configuration asks for those too, and anything carrying the
  loop-prevention tag (CTE put it there: it must not come back as a sighting of MISP).
- ``ip-src``/``ip-dst`` hold an IPv4 or IPv6 address or a CIDR block: the value tells which.
- Composite types split on ``|``: ``ip-dst|port`` and ``hostname|port`` keep the address,
  ``filename|sha256`` and ``malware-sample`` (``filename|md5``) keep the hash.
- A supported type whose value is malformed gives ``Record(value, type, error=...)``: the run
  rejects it with the reason and the attribute's UUID, so a person can find it in MISP.
- Times: ``first_seen``/``last_seen`` when MISP has them (ISO 8601), else the attribute's
  ``timestamp`` (its last change). Tags: the attribute's and its event's. Comments: the event's
  ``info`` and the attribute's ``comment``. External id: the attribute's UUID.
- Severity comes from the event's ``threat_level_id`` when the answer carries it (feeds do;
  ``attributes/restSearch`` does not): 1 high, 2 medium, 3 low, 4 (undefined) unknown.
  Reputation is left to the configuration's.

MISP writes numbers as strings (``"timestamp": "1714557600"``, ``"threat_level_id": "4"``) and
flags as ``true``/``false``, ``"1"``/``"0"`` or ``1``/``0`` depending on version and export: all are
read alike.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from django import forms

from connectors.base import Outbound, Record
from exchange.models import IndicatorType
from exchange.normalize import Rejected, normalize

IP = "ip"  # ipv4, ipv6 or cidr: told apart by the value
CTE_TYPES = ("url", "domain", "hostname", "ipv4", "ipv6", "cidr", "md5", "sha1", "sha256", "email")


class PullForm(forms.Form):
    """The settings every MISP pull has, instance or feed: which attributes it keeps."""

    types = forms.MultipleChoiceField(
        label="Indicator types to pull", choices=IndicatorType.choices, initial=list(CTE_TYPES),
        widget=forms.CheckboxSelectMultiple,
    )
    include_non_ids = forms.BooleanField(
        label="Also pull attributes not flagged for IDS", required=False,
        help_text="MISP's to_ids flag marks attributes fit for detection; without it they are context and are skipped.",
    )

# MISP attribute type -> the CTE type of each ``|``-separated part (None: a part CTE leaves, a port
# or a file name). https://www.misp-project.org/datamodels/#types
PULL_TYPES: dict[str, tuple[str | None, ...]] = {
    "url": ("url",),
    "domain": ("domain",),
    "hostname": ("hostname",),
    "ip-src": (IP,),
    "ip-dst": (IP,),
    "ip-src|port": (IP, None),
    "ip-dst|port": (IP, None),
    "hostname|port": ("hostname", None),
    "domain|ip": ("domain", IP),
    "md5": ("md5",),
    "sha1": ("sha1",),
    "sha256": ("sha256",),
    "filename|md5": (None, "md5"),
    "filename|sha1": (None, "sha1"),
    "filename|sha256": (None, "sha256"),
    "malware-sample": (None, "md5"),  # "file name|md5 of the sample"
    "email": ("email",),
    "email-src": ("email",),
    "email-dst": ("email",),
}

_SEVERITY_OF_THREAT_LEVEL = {"1": "high", "2": "medium", "3": "low"}
_TRUE = {"1", "true", "yes"}


@dataclass(frozen=True)
class PullOptions:
    """What a pull keeps: the CTE types wanted, whether ``to_ids=false`` attributes count, and
    the loop-prevention tag whose bearers are left out."""

    types: frozenset[str] = frozenset(CTE_TYPES)
    include_non_ids: bool = False
    skip_tag: str = ""

    @classmethod
    def of(cls, settings: dict) -> "PullOptions":
        return cls(types=frozenset(settings.get("types") or CTE_TYPES),
                   include_non_ids=bool(settings.get("include_non_ids")),
                   skip_tag=(settings.get("loop_tag") or "").strip())


def misp_types_for(types) -> list[str]:
    """The MISP attribute types that can give any of the CTE ``types``, for a search's filter."""
    wanted = set(types)
    if wanted & {"ipv4", "ipv6", "cidr"}:
        wanted.add(IP)
    return sorted(name for name, parts in PULL_TYPES.items() if wanted & set(parts))


def flag(value) -> bool:
    """A MISP boolean: true, 1, "1", "true" (any case) are true; anything else is false."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE if value is not None else False


def epoch(value) -> datetime | None:
    """A MISP timestamp (seconds since 1970, as an integer or a string of digits)."""
    try:
        seconds = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    if seconds <= 0:
        return None
    if seconds > 10**11:  # microseconds: how MISP stores first_seen/last_seen internally
        seconds //= 10**6
    return datetime.fromtimestamp(seconds, UTC)


def moment(value) -> datetime | None:
    """A MISP ``first_seen``/``last_seen``: ISO 8601 as the API writes it, or a number."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float) or str(value).strip().isdigit():
        return epoch(value)
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def tag_names(holder: dict) -> list[str]:
    """The names of a MISP object's ``Tag`` list (attribute, event or manifest entry)."""
    tags = holder.get("Tag") or []
    return [str(tag["name"]) for tag in tags if isinstance(tag, dict) and tag.get("name")]


def ip_type(value: str) -> str:
    """ipv4, ipv6 or cidr for an ``ip-src``/``ip-dst`` value; a malformed one fails its check later."""
    if "/" in value:
        return "cidr"
    return "ipv6" if ":" in value else "ipv4"


def event_severity(event: dict) -> str | None:
    return _SEVERITY_OF_THREAT_LEVEL.get(str(event.get("threat_level_id") or "").strip())


def event_attributes(event: dict) -> list[dict]:
    """An event's attributes and those of its objects (a deleted object's count as deleted)."""
    attributes = [item for item in event.get("Attribute") or [] if isinstance(item, dict)]
    for obj in event.get("Object") or []:
        if not isinstance(obj, dict):
            continue
        for item in obj.get("Attribute") or []:
            if isinstance(item, dict):
                attributes.append({**item, "deleted": True} if flag(obj.get("deleted")) else item)
    return attributes


def attribute_records(attribute: dict, event: dict, options: PullOptions, *,
                      event_tags: list[str] | tuple = ()) -> list[Record]:
    """The records one MISP attribute gives (see the module docstring)."""
    kinds = PULL_TYPES.get(attribute.get("type"))
    if kinds is None or flag(attribute.get("deleted")):
        return []
    if not options.include_non_ids and not flag(attribute.get("to_ids")):
        return []
    tags = list(dict.fromkeys([*tag_names(attribute), *event_tags]))
    if options.skip_tag and options.skip_tag in tags:
        return []
    parts = _parts(attribute, kinds)
    if isinstance(parts, Record):
        return [parts] if _wanted(parts.type, options) else []
    changed = epoch(attribute.get("timestamp"))
    common = {
        "first_seen": moment(attribute.get("first_seen")) or changed,
        "last_seen": moment(attribute.get("last_seen")) or changed,
        "tags": tags,
        "severity": event_severity(event),
        "comments": "; ".join(str(text).strip() for text in (event.get("info"), attribute.get("comment"))
                              if text and str(text).strip()),
        "external_id": str(attribute.get("uuid") or ""),
    }
    return [_record(kind, value, attribute, common) for kind, value in parts if _wanted(kind, options)]


def _wanted(kind: str | None, options: PullOptions) -> bool:
    return kind is None or kind in options.types


def _parts(attribute: dict, kinds: tuple[str | None, ...]) -> list[tuple[str, str]] | Record:
    """``(CTE type, value)`` of each part CTE keeps, or a Record with the error."""
    misp_type, raw = attribute.get("type"), attribute.get("value")
    first = next(kind for kind in kinds if kind is not None)
    if raw is None or isinstance(raw, dict | list) or not str(raw).strip():
        return Record(str(raw or ""), None if first == IP else first,
                      error=f"MISP {misp_type} attribute {attribute.get('uuid') or '?'} has no value")
    text = str(raw).strip()
    if len(kinds) == 1:
        values = [text]
    elif "|" not in text:
        return Record(text, None if first == IP else first,
                      error=f"MISP {misp_type} attribute {attribute.get('uuid') or '?'}: {text!r} is not "
                            f"two values joined by '|'")
    else:
        # A file name may hold a '|', a hash never does: split a filename|hash at its last one.
        values = text.rsplit("|", 1) if kinds[0] is None else text.split("|", 1)
    return [(ip_type(value.strip()) if kind == IP else kind, value.strip())
            for kind, value in zip(kinds, values, strict=True) if kind is not None]


def _record(kind: str, value: str, attribute: dict, common: dict) -> Record:
    try:
        canonical = normalize(kind, value)
    except Rejected as exc:
        return Record(value, kind, error=f"{exc} (MISP {attribute.get('type')} attribute "
                                         f"{attribute.get('uuid') or '?'})")
    return Record(canonical, kind, **common)


# Push ---------------------------------------------------------------------------------------------

PUSH_TYPES = {"url": "url", "domain": "domain", "hostname": "hostname", "md5": "md5", "sha1": "sha1",
              "sha256": "sha256"}
IP_ATTRIBUTE_TYPES = ("ip-dst", "ip-src")
EMAIL_ATTRIBUTE_TYPES = ("email-src", "email-dst")
# Each type's default category in MISP's describeTypes; a category must suit the type.
CATEGORIES = {"url": "Network activity", "domain": "Network activity", "hostname": "Network activity",
              "ip-dst": "Network activity", "ip-src": "Network activity", "md5": "Payload delivery",
              "sha1": "Payload delivery", "sha256": "Payload delivery", "email-src": "Payload delivery",
              "email-dst": "Network activity"}


def misp_type(kind: str, params: dict) -> str:
    """The MISP attribute type for a CTE type, the action's parameters choosing the IP and email sides."""
    if kind in ("ipv4", "ipv6", "cidr"):
        return params.get("ip_attribute") or IP_ATTRIBUTE_TYPES[0]
    if kind == "email":
        return params.get("email_attribute") or EMAIL_ATTRIBUTE_TYPES[0]
    return PUSH_TYPES[kind]


def to_attribute(item: Outbound, params: dict, tag: str) -> dict:
    """One indicator as a MISP attribute for ``attributes/add``, flagged for IDS and tagged."""
    kind = misp_type(item.type, params)
    comment = f"CTE: reputation {item.reputation}/10, severity {item.severity}"
    if item.comments:
        comment += f"; {item.comments}"
    attribute = {"type": kind, "category": CATEGORIES[kind], "value": item.value, "to_ids": True,
                 "distribution": "5", "comment": comment[:2000], "Tag": [{"name": tag}]}
    if item.first_seen and item.last_seen and item.first_seen <= item.last_seen:
        attribute["first_seen"] = item.first_seen.isoformat()
        attribute["last_seen"] = item.last_seen.isoformat()
    return attribute
