"""Routes of the api keys domain."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
