from __future__ import annotations

from django.urls import include, path

from config.urls import urlpatterns as project

urlpatterns = [path("naive/api/v1/", include("benchmarks.naive.urls")), *project]
