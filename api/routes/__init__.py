"""Routers, one per resource; :func:`api.app.create_app` wires them."""
