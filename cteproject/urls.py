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
if "connectors.taxii_server" in settings.CTE_CONNECTORS:
    from connectors.taxii_server import views as taxii

    root = "taxii2/cte/collections/<str:collection>/"
    urlpatterns += [
        path("taxii2/", taxii.discovery, name="taxii-discovery"),
        path("taxii2/cte/", taxii.api_root, name="taxii-root"),
        path("taxii2/cte/collections/", taxii.collection_list, name="taxii-collections"),
        path(root, taxii.collection, name="taxii-collection"),
        path(f"{root}objects/", taxii.object_list, name="taxii-objects"),
        path(f"{root}objects/<str:object_id>/", taxii.object_detail, name="taxii-object"),
        path(f"{root}objects/<str:object_id>/versions/", taxii.object_versions, name="taxii-versions"),
        path(f"{root}manifest/", taxii.manifest_list, name="taxii-manifest"),
    ]
