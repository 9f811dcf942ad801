"""Entry point of the web chat (run by PyScript with top-level await)."""

import logging

import js
from chatui.app import ChatApp
from chatui.dom import by_id


class _ConsoleHandler(logging.Handler):
    """Client diagnostics to the browser console (never secrets: the library
    does not log them), and the last lines in ``window.__log`` for tests."""

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        js.console.log(line)
        buf = getattr(js.window, "__log", None)
        if buf is None:
            js.window.__log = js.Array.new()
            buf = js.window.__log
        buf.push(line)
        if buf.length > 200:
            buf.shift()


handler = _ConsoleHandler()
handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
logging.getLogger("corecrypto").addHandler(handler)
logging.getLogger("corecrypto").setLevel(logging.INFO)

by_id("loading").hidden = True
app = ChatApp()
await app.boot()  # noqa: F704, PLE1142 - PyScript runs this module with top-level await
