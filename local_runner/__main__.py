"""`python -m local_runner`: the CLI (local_runner/cli.py).

Importing the CLI builds many long-lived objects (pydantic's validators and schemas, the modules'
own), and the cyclic garbage collector would walk them again and again while they are being made,
finding nothing to free: ~25 ms of a ~0.2 s start (CPU seconds, measured interleaved). So it is off
while the CLI is imported, and what the import made is frozen (gc.freeze: left out of every later
collection), then it is on again for the run itself."""

import gc

gc.disable()
try:
    from local_runner.cli import main
finally:
    gc.freeze()
    gc.enable()

raise SystemExit(main())
