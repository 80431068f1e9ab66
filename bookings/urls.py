from django.urls import path

from . import ops_views, views

# Path segments are matched loosely and validated by serializers, so a malformed id is a
# 400 naming the field rather than a bare 404.
urlpatterns = [
    path("customers", views.CustomerListView.as_view(), name="customer-list"),
    path("customers/<str:customer_id>", views.CustomerDetailView.as_view(), name="customer-detail"),
    path("customers/<str:customer_id>/orders", views.OrderListView.as_view(), name="order-list"),
    path("customers/<str:customer_id>/orders/<str:order_id>", views.OrderDetailView.as_view(), name="order-detail"),
    path("customers/<str:customer_id>/orders/<str:order_id>/cancel", views.OrderCancelView.as_view(), name="order-cancel"),
    path("flights", views.FlightListView.as_view(), name="flight-list"),
    path("flights/<str:flight_number>/<str:flight_date>", views.FlightDetailView.as_view(), name="flight-detail"),
    path("flights/<str:flight_number>/<str:flight_date>/cancel", views.FlightCancelView.as_view(), name="flight-cancel"),
    path("ops/init", ops_views.InitView.as_view(), name="ops-init"),
    path("ops/truncate", ops_views.TruncateView.as_view(), name="ops-truncate"),
]
