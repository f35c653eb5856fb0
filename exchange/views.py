"""Plain views outside the admin: a health check and the demo feeds served by the app itself."""

from pathlib import Path

from django.db import connection
from django.http import FileResponse, Http404, JsonResponse

DEMO_FEEDS = Path(__file__).resolve().parent / "demo"


def health(request):
    """200 when the database answers; for load balancers and container health checks."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def demo_feed(request, name: str):
    """A sample feed shipped with the project, so that the demo's pull works offline."""
    path = DEMO_FEEDS / name
    if path.parent != DEMO_FEEDS or not path.is_file() or path.suffix not in (".txt", ".csv"):
        raise Http404("no such demo feed")
    content_type = "text/csv" if path.suffix == ".csv" else "text/plain"
    return FileResponse(path.open("rb"), content_type=f"{content_type}; charset=utf-8")
