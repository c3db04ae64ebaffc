"""A stand-in for the Functions host + Durable extension on one machine (`python -m local_runner
serve`, the tests): it runs this app's real functions through the SDK's own machinery. A
development and test tool, kept out of deployments by .funcignore; production is Azure."""
