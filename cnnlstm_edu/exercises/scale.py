"""Lesson 10's exercises (data-parallel training): being written (session 5); filled in with its exercises before this session ends."""

from __future__ import annotations

from .core import Exercise

__all__ = ["EXERCISES"]

EXERCISES: tuple[Exercise, ...] = ()
