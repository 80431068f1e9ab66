from django.urls import path

from . import apis

# Mounted at api/v1/query/ (and the notification endpoint at api/v1/notifications).
urlpatterns = [
    path("customers", apis.CustomerListApi.as_view(), name="query-customers"),
    path("passengers", apis.PassengerListApi.as_view(), name="query-passengers"),
    path("passengers/counts", apis.PassengerCountsApi.as_view(), name="query-passenger-counts"),
    path("weather-alerts", apis.WeatherAlertListApi.as_view(), name="query-weather-alerts"),
    path("weather-alerts/<int:pk>", apis.WeatherAlertDetailApi.as_view(), name="query-weather-alert"),
    path("weather-alerts/<int:pk>/expire", apis.WeatherAlertExpireApi.as_view(), name="query-weather-alert-expire"),
]
