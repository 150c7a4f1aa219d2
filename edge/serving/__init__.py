"""The serving layer every service stands on: bind errors, signals, systemd notify/watchdog, error shape, auth.

A new service is a few lines: build its app, `start_site` it, and `serve_async` (or `serve_threaded`) until
SIGTERM; a taken port is `edge: error: cannot listen on HOST:PORT: reason`, never a traceback.
"""
