"""The web chat's UI: runs on MicroPython on the page's main thread.

It draws screens and forwards what people do to the client core in the worker
(``core_js``); it holds no key and does no cryptography. MicroPython is a subset of
Python 3: no ``typing``, no dataclasses, no ``from __future__``; annotations are
allowed (and ignored).
"""
