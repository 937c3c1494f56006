"""URL routes: the admin-style console lives at the site root."""

from django.urls import include, path

from msp_console.admin_site import site

urlpatterns = [
    path("django-rq/", include("django_rq.urls")),
    path("", site.urls),
]
