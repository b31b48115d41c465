from django.urls import path

from . import views

app_name = "requests"

urlpatterns = [
    path("", views.home, name="home"),
    path("requests/<str:number>/", views.request_detail, name="detail"),
]
