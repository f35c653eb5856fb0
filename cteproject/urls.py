from django.conf import settings
from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from exchange import views

admin.site.site_header = "CTE: Cloud Threat Exchange"
admin.site.site_title = "CTE"
admin.site.index_title = "Threat exchange"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("healthz", views.health, name="health"),
]
if "connectors.edl" in settings.CTE_CONNECTORS:
    from connectors import edl

    urlpatterns.append(path("feeds/edl/<slug:slug>.txt", edl.serve, name="edl"))
if settings.CTE_DEMO_FEEDS:
    urlpatterns.append(path("demo/feeds/<str:name>", views.demo_feed, name="demo-feed"))
