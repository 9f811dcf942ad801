"""The Intellacc web chat, in Python under PyScript (Pyodide)."""
