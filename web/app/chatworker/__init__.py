"""The web chat's client core, as it runs in the page's Web Worker (Pyodide).

:mod:`.service` turns the UI's requests into :class:`corecrypto.messenger.Messenger`
calls and the messenger's events into messages for the UI, as JSON: nothing but
plain data crosses the worker boundary. :mod:`.browser` binds it to the worker.
"""
