"""URL routes: the admin-style console lives at the site root."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("django-rq/", include("django_rq.urls")),
    path("", admin.site.urls),
]
