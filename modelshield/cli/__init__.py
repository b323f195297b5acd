"""The ``modelshield`` command: thin shells that parse, call the library and render."""
