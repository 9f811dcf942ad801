"""Entry point of the web chat (run by PyScript with top-level await)."""

from chatui.app import ChatApp
from chatui.dom import by_id

by_id("loading").hidden = True
app = ChatApp()
await app.boot()  # noqa: F704, PLE1142 - PyScript runs this module with top-level await
