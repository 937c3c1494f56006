"""The aiohttp application key under which the running ``Simulator`` is stored."""

from __future__ import annotations

from typing import Any

from aiohttp import web

SIM_KEY: web.AppKey[Any] = web.AppKey("sim", object)
