"""The ``filetier`` command line."""
