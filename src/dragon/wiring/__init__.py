"""app.py's wiring, one module per capability: settings in, store and integrations joined."""
