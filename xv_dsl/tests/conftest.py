"""Undo a name clash between this folder and the package it tests.

The repository folder ``xv_dsl/`` has the same name as the package
``xv_dsl`` (installed from ``xv_dsl/src``).  Under
``--import-mode=importlib`` pytest names this file ``xv_dsl.tests.conftest``
and, before importing it, registers the *folder* as a namespace package
called ``xv_dsl`` -- which hides the real package from the tests.  Put the
real package back; the tests then import it normally.
"""

import importlib
import sys

if getattr(sys.modules.get("xv_dsl"), "__file__", None) is None:
    sys.modules.pop("xv_dsl", None)
    importlib.import_module("xv_dsl")
