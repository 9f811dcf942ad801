"""Entry point (``await chatui.main.run()`` from web/js/app_boot.mjs)."""

from . import dom
from .app import start


async def run():
    dom.listen()
    start()
