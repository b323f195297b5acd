"""The inference gateway: authenticate, authorise, rate-limit, validate, predict and audit every request.

Import-light on purpose: ``import modelshield.serve`` loads neither FastAPI nor torch. Build the
app with ``modelshield.serve.app.create_app(config)``, the config with
``modelshield.serve.config.load_config(path)``, and serve it with ``modelshield.serve.server.run_server``.
"""
