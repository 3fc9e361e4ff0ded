"""The ``xv`` command line: one module per command group."""
