from django.urls import path

from . import views

app_name = "servicedesk"

urlpatterns = [
    path("health/", views.health, name="health"),
    path("health/<str:what>/", views.run, name="run"),
]
