"""Subcommands of the ``neurocredit`` CLI, one module each (``add_parser`` + ``run``).

To add a command: write ``neurocredit/commands/<name>.py`` and append ``<name>`` here.
Modules must import heavy packages (torch, brian2, lava) inside ``run`` only.
"""

COMMANDS = [
    "train",
    "eval",
    "info",
    "models",
    "targets",
    "report",
    "compare",
    "deploy",
    "convert",
    "simulate",
    "compare_rules",
    "sweep",
    "nir_export",
    "nir_import",
    "learn",
]
