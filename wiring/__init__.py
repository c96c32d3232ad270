"""The composition root: every backend chosen from settings in one place, every service built and closed here.

It sits above `executor` and `core` (it builds both) and below `ui` and `api` (they call it).
"""
