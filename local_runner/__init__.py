"""The local runner: executes the pipeline's one orchestration on this machine."""

import os

# pydantic looks for third-party plugins by scanning every installed distribution's entry points
# when the first model is built: ~25 ms and ~1 MB per CLI start-up (importlib.metadata, email),
# for plugins this project does not use. An operator who sets the variable keeps their choice.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
