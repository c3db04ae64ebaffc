"""One module per storage backend: its client, defaults, naming and error translation, shared by
the mounter (source) and the writer (destination) of that backend, so neither imports the other."""
