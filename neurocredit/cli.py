"""The ``neurocredit`` command line: a thin layer over the Python API.

Each subcommand lives in its own module under :mod:`neurocredit.commands` with two functions,
``add_parser(subparsers)`` and ``run(args) -> int``; :data:`neurocredit.commands.COMMANDS` lists
them. Every user-fixable error is a :class:`NeurocreditError`: printed as one line on stderr,
exit code 2, no traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from neurocredit import __version__
from neurocredit.allocator import keep_freed_memory
from neurocredit.commands import COMMANDS
from neurocredit.errors import NeurocreditError, require_at_least_one

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other error
        sys.stderr.write(f"neurocredit: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(EXIT_USER_ERROR)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="neurocredit",
        description="Train rate and spiking networks with local learning rules, simulate them in "
        "Norse and Brian2, deploy them to Lava, and report spikes and energy.",
    )
    parser.add_argument("--version", action="version", version=f"neurocredit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads (default: torch's choice, one per core); 1 is often faster "
                        "for small networks on a busy machine")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"neurocredit.commands.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(handler=module.run)
    return parser


def set_threads(threads: Optional[int]) -> None:
    """Apply ``--threads`` to torch (imported only when the option is given)."""
    if threads is None:
        return
    require_at_least_one("--threads", threads)
    import torch

    torch.set_num_threads(threads)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        set_threads(args.threads)
        keep_freed_memory()  # training and simulation reuse their large blocks (neurocredit.allocator)
        return int(args.handler(args) or 0)
    except NeurocreditError as error:
        if args.debug:
            raise
        sys.stderr.write(f"neurocredit {args.command}: error: {error}\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        sys.stderr.write(f"neurocredit {args.command}: interrupted\n")
        return 130
    except BrokenPipeError:
        # output piped into e.g. `head`, which stopped reading: not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
