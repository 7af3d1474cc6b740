"""progress-sidecar: streams training progress files to WebSocket clients as they change.

The layers, each a folder (docs/architecture.md): ``core`` (pure: the job state, merge patches,
the protocol, the hub), ``files`` (the file source), ``server`` (aiohttp: the app, its
handlers, the command line) and ``clients`` (the Python client and the terminal view). This
module imports none of them, so that ``import sidecar.core.state`` stays light.
"""
