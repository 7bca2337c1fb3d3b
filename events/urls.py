"""Push endpoints, served by the lean push handler (fleet.wsgi): authenticate, one INSERT, answer."""

from __future__ import annotations

from django.urls import path

from events import gateway

app_name = "push"

urlpatterns = [
    path("iothub/<slug:source>/<str:path>", gateway.push_iothub, name="iothub"),
    path("tsp/<slug:source>/<str:key>", gateway.push_tsp, name="tsp"),
    path("hmac/<slug:source>", gateway.push_hmac, name="hmac"),
]
