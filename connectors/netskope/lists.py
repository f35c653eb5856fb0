"""Pushes to a tenant: URL lists (append, retract by replace, deploy) and file hash lists.

URL list changes stay pending on the tenant until deployed; a share run deploys once, in
``finish``, after all its appends and retractions. A list holds about 7 MB of entries: what
would not fit next to what the list already holds is not sent. An invalid entry refuses the
whole request with 400 ``{"statusCode": 400, "message": [[entry, reason], ...]}``: those
entries fail with the tenant's reason and the rest is sent again.

A file hash list is replaced whole by ``POST /api/v1/updateFileHashList`` (v1 token); the
tenant answers an unchanged list with the error "Duplicate request, no change in file hashes",
which means the list already holds that set.
"""

from dataclasses import dataclass, field

from connectors.base import ConnectorError, Context, Outbound, PushResult
from connectors.netskope.client import HASHLIST, URLLIST, TenantClient

MB = 1024 * 1024
URL_LIST_MAX_MB = 7
HASH_LIST_MAX_BYTES = 8 * MB
DUPLICATE = "duplicate request, no change in file hashes"


def entry_size(value: str) -> int:
    """Bytes an entry takes in a list: its text and a line break (as the share run counts)."""
    return len(value.encode()) + 1


@dataclass
class UrlList:
    """A URL list as this run knows it: the tenant's current (pending) content."""

    id: int | None
    name: str
    type: str
    urls: set[str] = field(default_factory=set)
    size: int = 0

    @classmethod
    def of(cls, data: dict) -> "UrlList":
        body = data.get("data") or {}
        urls = {url for url in body.get("urls") or [] if isinstance(url, str)}
        return cls(data.get("id"), data.get("name", ""), body.get("type", "exact"), urls,
                   sum(entry_size(url) for url in urls))

    def add(self, values: list[str]) -> None:
        for value in values:
            if value not in self.urls:
                self.urls.add(value)
                self.size += entry_size(value)


class UrlLists:
    """The URL lists of one tenant during one share run: found once, changed, deployed once."""

    def __init__(self, client: TenantClient):
        self.client = client
        self.known: dict[str, UrlList | None] = {}
        self.changed = False

    def find(self, name: str) -> UrlList | None:
        if name not in self.known:
            what = "listing URL lists"
            response = self.client.v2("GET", URLLIST, scope=URLLIST, what=what, params={"pending": 1})
            lists = self.client.json(response, what)
            if response.status_code != 200 or not isinstance(lists, list):
                raise ConnectorError(f"tenant {self.client.name} answered {what} with {response.status_code}: {lists}")
            found = next((item for item in lists if isinstance(item, dict) and item.get("name") == name), None)
            self.known[name] = UrlList.of(found) if found else None
            # Changes a failed run left undeployed go out with this run's deploy.
            self.changed = self.changed or bool(found and found.get("pending"))
        return self.known[name]

    def append(self, params: dict, max_bytes: int, values: list[str]) -> PushResult:
        """Add ``values`` to the list (created when missing and allowed), within ``max_bytes``."""
        name, wanted_type = params["list_name"], params.get("list_type") or "exact"
        target = self.find(name)
        if target is None and params.get("must_exist"):
            raise ConnectorError(f"tenant {self.client.name} has no URL list {name!r}, and this sharing configuration "
                                 "does not create one: create it, or allow creating it", permanent=True)
        if target is not None and target.type != wanted_type:
            raise ConnectorError(f"URL list {name!r} on tenant {self.client.name} holds {target.type} entries; this "
                                 f"sharing configuration writes {wanted_type} ones: choose the same type or another "
                                 "list", permanent=True)
        result = PushResult()
        fits = self._room(target, name, max_bytes, values, result)
        while fits:
            response = self._write(target, name, wanted_type, fits)
            if response.status_code == 200:
                target = self._written(target, name, wanted_type, response, fits)
                result.accepted += fits
                break
            fits = self._drop_refused(name, response, fits, result)
        return result

    def _room(self, target: UrlList | None, name: str, max_bytes: int, values: list[str], result: PushResult):
        """The values that fit next to what the list holds; the others fail with why."""
        size = target.size if target else 0
        present = target.urls if target else set()
        fits = []
        for value in dict.fromkeys(values):
            if value in present:
                fits.append(value)
                continue
            if size + entry_size(value) > max_bytes:
                result.failed[value] = (f"URL list {name!r} is full on tenant {self.client.name} "
                                        f"({size:,} of {max_bytes:,} bytes used): not sent")
                continue
            size += entry_size(value)
            fits.append(value)
        return fits

    def _write(self, target: UrlList | None, name: str, list_type: str, values: list[str]):
        data = {"urls": values, "type": list_type}
        if target is None:
            return self.client.v2("POST", URLLIST, scope=URLLIST, what=f"creating URL list {name!r}",
                                  body={"name": name, "data": data})
        return self.client.v2("PATCH", f"{URLLIST}/{target.id}/append", scope=URLLIST,
                              what=f"appending to URL list {name!r}", body={"name": name, "data": data})

    def _written(self, target: UrlList | None, name: str, list_type: str, response, values: list[str]) -> UrlList:
        self.changed = True
        if target is None:
            created = self.client.json(response, f"creating URL list {name!r}")
            created = created[0] if isinstance(created, list) and created else created
            target = UrlList(created.get("id") if isinstance(created, dict) else None, name, list_type)
            self.known[name] = target
        target.add(values)
        return target

    def _drop_refused(self, name: str, response, values: list[str], result: PushResult) -> list[str]:
        """After a 400: the values still worth sending; the refused ones fail with the tenant's reason."""
        body = self.client.json(response, f"writing URL list {name!r}")
        message = body.get("message") if isinstance(body, dict) else body
        refused = _refused_entries(message, set(values))
        if not refused:
            reason = f"the tenant refused the request (400): {message}"
            result.failed.update(dict.fromkeys(values, reason[:500]))
            return []
        for value, why in refused.items():
            result.failed[value] = f"refused by tenant {self.client.name} as invalid: {why}"
        return [value for value in values if value not in refused]

    def remove(self, params: dict, values: list[str]) -> PushResult:
        """Take ``values`` out of the list: replace it with what remains."""
        name = params["list_name"]
        self.known.pop(name, None)  # read it afresh: people edit lists on the tenant too
        target = self.find(name)
        if target is None or not target.urls & set(values):
            return PushResult(accepted=list(values))
        remaining = sorted(target.urls - set(values))
        response = self.client.v2("PATCH", f"{URLLIST}/{target.id}/replace", scope=URLLIST,
                                  what=f"replacing URL list {name!r}",
                                  body={"name": name, "data": {"urls": remaining, "type": target.type}})
        if response.status_code != 200:
            body = self.client.json(response, f"replacing URL list {name!r}")
            reason = f"the tenant refused the replace (400): {body.get('message') if isinstance(body, dict) else body}"
            return PushResult(failed=dict.fromkeys(values, reason[:500]))
        self.changed = True
        target.urls = set(remaining)
        target.size = sum(entry_size(url) for url in remaining)
        return PushResult(accepted=list(values))

    def deploy(self) -> None:
        if not self.changed:
            return
        self.client.v2("POST", f"{URLLIST}/deploy", scope=URLLIST, what="deploying URL list changes")
        self.changed = False


def _refused_entries(message, sent: set[str]) -> dict[str, str]:
    """``[[entry, reason...], ...]`` -> {entry: reason} for the entries this request sent."""
    refused = {}
    if not isinstance(message, list):
        return refused
    for item in message:
        entry, *why = item if isinstance(item, list) and item else [item]
        if isinstance(entry, str) and entry in sent:
            refused[entry] = "; ".join(str(part) for part in why) or "invalid entry"
    return refused


def lists_of(ctx: Context, client: TenantClient) -> UrlLists:
    """The run's URL lists state, kept on the run's context (one per share run)."""
    state = getattr(ctx, "netskope_lists", None)
    if state is None:
        state = UrlLists(client)
        ctx.netskope_lists = state
    return state


def replace_hashes(client: TenantClient, name: str, indicators: list[Outbound]) -> PushResult:
    """Make the file hash list ``name`` hold exactly these MD5 and SHA256 values."""
    values = list(dict.fromkeys(item.value for item in indicators))
    what = f"replacing file hash list {name!r}"
    answer = client.v1(HASHLIST, what=what, body={"name": name, "list": ",".join(values)})
    if not isinstance(answer, dict):
        raise ConnectorError(f"tenant {client.name} answered {what} with {answer!r}")
    if answer.get("status") == "success":
        return PushResult(accepted=values)
    errors = "; ".join(str(error) for error in answer.get("errors") or []) or str(answer)
    if DUPLICATE in errors.lower():
        return PushResult(accepted=values)  # the list holds this set already
    if "token" in errors.lower() or "authoriz" in str(answer.get("errorCode", "")).lower():
        raise ConnectorError(f"tenant {client.name} refused the API v1 token while {what}: {errors}; check the v1 "
                             "token (Settings > Tools > REST API v1)", permanent=True)
    if "list name" in errors.lower() or "not found" in errors.lower():
        raise ConnectorError(f"tenant {client.name} has no file hash list {name!r} ({errors}): create it under "
                             "Policies > Profiles > File, then enable this configuration again", permanent=True)
    raise ConnectorError(f"tenant {client.name} refused {what}: {errors}")
