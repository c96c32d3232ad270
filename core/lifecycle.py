"""What every long-lived member of the service container is: something to start and to close."""

from __future__ import annotations

from typing import Protocol


class Component(Protocol):
    """Started once before serving, closed once after; `aclose` must not raise for a component never started."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...
