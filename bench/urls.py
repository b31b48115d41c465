"""The project's URLs plus ``/bench/trivial/`` (benchmark server only, see bench.settings)."""

from django.http import HttpResponse
from django.urls import path

from opos.urls import urlpatterns as project_urlpatterns


def trivial(request):
    """The floor of the page benchmark: the whole stack, no database, a few bytes."""
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [path("bench/trivial/", trivial, name="bench-trivial"), *project_urlpatterns]
