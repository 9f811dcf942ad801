"""A few DOM helpers over Pyodide's ``js`` module: elements, events, regions.

Event handlers are Python functions wrapped in JS proxies. A :class:`Region`
owns the proxies of what it renders and destroys them when it re-renders, so
long sessions do not leak.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy  # type: ignore[import-not-found]

document = js.document
_TASKS: set[asyncio.Future[Any]] = set()
_PERMANENT: list[Any] = []  # handlers of elements that live as long as the page
_collector: list[Any] | None = None

Child = Any  # an element, a string, or None


def h(tag: str, attrs: dict[str, Any] | None = None, *children: Child) -> Any:
    """Create ``<tag>`` with attributes (``class_`` -> ``class``; ``on_click``
    etc. attach handlers; ``data_x`` -> ``data-x``; booleans toggle)."""
    el = document.createElement(tag)
    for key, value in (attrs or {}).items():
        if key.startswith("on_"):
            on(el, key[3:], value)
            continue
        name = "class" if key == "class_" else key.replace("_", "-")
        if value is True:
            el.setAttribute(name, "")
        elif value is False or value is None:
            continue
        else:
            el.setAttribute(name, str(value))
    append(el, *children)
    return el


def append(el: Any, *children: Child) -> Any:
    for c in children:
        if c is None:
            continue
        if isinstance(c, str):
            el.appendChild(document.createTextNode(c))
        elif isinstance(c, list | tuple):
            append(el, *c)
        else:
            el.appendChild(c)
    return el


def spawn(coro: Awaitable[Any]) -> None:
    """Run a coroutine in the background, keeping a reference until it ends."""
    task = asyncio.ensure_future(coro)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


def on(el: Any, event: str, handler: Callable[[Any], Any]) -> None:
    """Attach a handler; coroutine handlers are scheduled as tasks."""

    def call(ev: Any) -> None:
        if event == "submit":
            # Async handlers run later; the browser must not navigate meanwhile.
            ev.preventDefault()
        result = handler(ev)
        if asyncio.iscoroutine(result):
            spawn(result)

    proxy = create_proxy(call)
    el.addEventListener(event, proxy)
    (_collector if _collector is not None else _PERMANENT).append(proxy)


class Region:
    """A container whose content is replaced as a whole."""

    def __init__(self, el: Any) -> None:
        self.el = el
        self._proxies: list[Any] = []

    @contextmanager
    def render(self) -> Iterator[Any]:
        """``with region.render() as el: append(el, ...)``: old content and its
        handlers go, handlers created inside belong to the new content."""
        global _collector
        for p in self._proxies:
            p.destroy()
        self.el.replaceChildren()
        outer, _collector = _collector, []
        try:
            yield self.el
        finally:
            self._proxies, _collector = _collector, outer


@contextmanager
def owned(region_proxies: list[Any]) -> Iterator[None]:
    """Collect the handlers created inside into ``region_proxies``."""
    global _collector  # noqa: PLW0603 - the collector is a dynamic scope
    outer, _collector = _collector, region_proxies
    try:
        yield
    finally:
        _collector = outer


def release(proxies: list[Any]) -> None:
    for p in proxies:
        p.destroy()
    proxies.clear()


def by_id(element_id: str) -> Any:
    return document.getElementById(element_id)


def set_state(state: str, screen: str = "") -> None:
    """The test hook: ``document.body.dataset.state`` (loading/locked/ready/error)."""
    document.body.dataset.state = state
    document.body.dataset.screen = screen


def announce(text: str) -> None:
    """Tell screen readers (an aria-live region) and sighted users (a toast)."""
    region = by_id("live")
    if region is not None:
        region.textContent = text
