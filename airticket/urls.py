from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from admin_portal.apis import NotificationApi
from airticket import health, views

urlpatterns = [
    path("", views.home, name="home"),
    path("api/v1/query/", views.QueryApiRoot.as_view(), name="query-root"),
    path("api/v1/query/", include("admin_portal.urls")),
    path("api/v1/notifications", NotificationApi.as_view(), name="notifications"),
    path("api/v1/", views.CommandApiRoot.as_view(), name="command-root"),
    path("api/v1/", include("bookings.urls")),
    path("api/v1/schema", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its init script from this URL (?script), not inline: the CSP runs no inline script.
    path("api/v1/docs", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/v1/redoc", SpectacularRedocView.as_view(url_name="schema", template_name="airticket/redoc.html"), name="redoc"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.ReadyView.as_view(), name="readyz"),
    path("admin/", admin.site.urls),
]

handler400 = "airticket.errors.bad_request"
handler404 = "airticket.errors.not_found"
handler500 = "airticket.errors.server_error"
