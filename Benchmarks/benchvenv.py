"""Runs a benchmark script under the project's .venv when the Python that started it
lacks a module the script needs (pyzmq, psutil): scripts/setup.sh installs them there.

    import benchvenv
    benchvenv.require(__file__, "zmq", "psutil")
    import zmq
"""
import importlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")


def require(script, *modules):
    """Imports `modules`; when one is missing, re-executes `script` under .venv's Python
    (once: CBENCH_REEXEC marks the second run, which then raises the ImportError)."""
    try:
        for name in modules:
            importlib.import_module(name)
    except ImportError:
        if os.path.exists(VENV_PY) and not os.environ.get("CBENCH_REEXEC"):
            os.environ["CBENCH_REEXEC"] = "1"
            os.execv(VENV_PY, [VENV_PY, os.path.abspath(script)] + sys.argv[1:])
        raise
