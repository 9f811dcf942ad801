"""Describing the DOM as data for ``web/js/dom_glue.mjs`` (registered as ``dom_js``).

A node is a string, ``None``, or ``[tag, attrs, *children]``; :func:`h` builds one.
Handlers are not functions but names: ``data-on-click="send"`` on an element makes
the glue call :func:`dispatch` with ``"send"``, which runs what :func:`action`
registered under that name.
"""

import asyncio
import json

import dom_js

_actions = {}
_tasks = []


def h(tag, attrs=None, *children):
    """``h("button", {"class": "primary", "data-on-click": "send"}, "Send")``; a
    child may be a list of nodes; ``None`` children and attributes are left out."""
    out = [tag, {k: v for k, v in (attrs or {}).items() if v is not None and v is not False}]
    for c in children:
        if c is None:
            continue
        if isinstance(c, (list, tuple)) and (not c or not isinstance(c[0], str)):
            out.extend(x for x in c if x is not None)
        else:
            out.append(c)
    return out


def action(name):
    """Decorator: run the function when an element's ``data-on-*`` names ``name``.
    It gets ``(arg, values)``: the element's ``data-arg`` and a dict (a form's fields
    for submit, ``{"value": ...}`` for input). Coroutines run as tasks."""

    def register(fn):
        _actions[name] = fn
        return fn

    return register


def spawn(coro):
    """Run a coroutine in the background; errors are reported, not lost."""

    async def guarded():
        try:
            await coro
        except Exception as e:  # noqa: BLE001 - a UI bug must not kill the page
            dom_js.announce("Something went wrong: " + str(e))
            print("UI task failed:", repr(e))

    return asyncio.create_task(guarded())


def dispatch(kind, name, arg, extra):
    fn = _actions.get(name)
    if fn is None:
        return
    try:
        result = fn(arg, json.loads(extra) if extra else {})
    except Exception as e:  # noqa: BLE001 - a UI bug must not kill the page
        dom_js.announce("Something went wrong: " + str(e))
        print("UI handler failed:", name, repr(e))
        return
    if result is not None and hasattr(result, "send"):
        spawn(result)


def listen():
    dom_js.listen(dispatch)


def render(selector, node):
    dom_js.render(selector, json.dumps(node))


def append(selector, node):
    dom_js.append(selector, json.dumps(node))


def prepend(selector, node):
    dom_js.prepend(selector, json.dumps(node))


def replace(selector, node):
    dom_js.replace(selector, json.dumps(node))


def set_state(state, screen=""):
    """The test hook: ``document.body.dataset.state`` and ``.screen``."""
    dom_js.set_state(state, screen)


def announce(text):
    """Tell screen readers (an aria-live region)."""
    dom_js.announce(text)


def show_error(selector, text):
    dom_js.show_error(selector, text)
    if text:
        announce(text)


def busy(text):
    """A visible progress indicator ("" hides it)."""
    dom_js.busy(text)


def open_dialog(title, *body, label="modal-title"):
    """A modal dialog: focus trapped inside, Escape and the backdrop close it, focus
    returns to what opened it."""
    head = h("div", {"class": "dialog-head"},
             h("h2", {"id": label}, title),
             h("button", {"type": "button", "class": "close", "aria-label": "Close",
                          "data-on-click": "close-dialog"}, "\u00d7"))
    dom_js.open_dialog(json.dumps(h("div", {"class": "dialog-body"}, head, list(body))), label)


def close_dialog():
    dom_js.close_dialog()


@action("close-dialog")
def _close(_arg, _values):
    close_dialog()
