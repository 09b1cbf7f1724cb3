"""The ``eft`` command.

Each command group lives next to its code, in a module with a
``register(subparsers)`` function listed in :data:`COMMAND_MODULES`; handlers return an
exit code and import what only they need (review server, trainer, ...) lazily.
Errors the user can fix (:class:`~eft.errors.EftError`, and any :class:`OSError`: the
files and folders they name, permissions, a folder where a file is wanted, ...) are
printed as one line, without a traceback (``EFT_DEBUG=1`` shows it); any other
exception is a bug and keeps its traceback.  Warnings the library raises for the user
(:class:`UserWarning`) print as one ``eft: warning: ...`` line, without the source line
Python shows.  Output cut short by its reader (``eft inspect FILE | head``) ends quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from pathlib import Path

from eft import __version__
from eft.errors import EftError


def _body_check(args: argparse.Namespace) -> int:
    from eft.body_check import format_report, run_check  # lazy: start-up time (torch)

    out = None if args.no_png else Path(args.output)
    report = run_check(args.model, out)
    print(format_report(report))
    if out is not None:
        print(f"wrote {out}")
    ok = report.anatomy_ok and report.keypoints_finite
    return 0 if ok else 1


def _body_import_smpl(args: argparse.Namespace) -> int:
    from eft.body.smpl_import import import_smpl  # lazy: start-up time (numpy)

    print(import_smpl(Path(args.src), Path(args.output)))  # ends "written to: OUTPUT"
    return 0


#: Modules whose ``register(subparsers)`` adds their commands, in ``--help`` order.
COMMAND_MODULES: tuple[str, ...] = ("eft.jobs.cli", "eft.annotations.cli", "eft.train.cli",
                                   "eft.review.cli")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eft",
        description="Exemplar Fine-Tuning: 3D SMPL pseudo-annotations from 2D keypoints.")
    parser.add_argument("--version", action="version", version=f"eft {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    body = sub.add_parser("body", help="body-model tools")
    body_sub = body.add_subparsers(dest="body_command", required=True)

    check = body_sub.add_parser(
        "check", help="pose the body model in canonical poses, print sanity numbers, draw a PNG")
    check.add_argument("--model", default=None,
                       help="SMPL .pkl/.npz file or folder (default: $EFT_BODY_MODEL, "
                            "else the embedded open body model)")
    check.add_argument("-o", "--output", default="out/body_check.png", help="PNG to write")
    check.add_argument("--no-png", action="store_true", help="print the numbers only")
    check.set_defaults(func=_body_check)

    imp = body_sub.add_parser(
        "import-smpl", help="convert an official SMPL .pkl (chumpy inside) to a plain .npz")
    imp.add_argument("src", help="SMPL_NEUTRAL/MALE/FEMALE .pkl (or .npz to validate)")
    imp.add_argument("-o", "--output", required=True, help="output .npz")
    imp.set_defaults(func=_body_import_smpl)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


#: Exit code of an error the user can fix (and of argparse's usage errors).
EXIT_ERROR = 2
#: Exit code when the reader of the output went away (128 + SIGPIPE, as for a program
#: that the signal ended).
EXIT_BROKEN_PIPE = 141


def os_error_message(exc: OSError) -> str:
    """One line for an :class:`OSError`: ``"PATH: reason"`` (``"SRC -> DST: reason"``
    for a rename or link), else its own text."""
    def name(value: object) -> str:
        return os.fsdecode(value) if isinstance(value, (str, bytes)) else str(value)

    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return (str(exc) or type(exc).__name__) if exc.errno is None else reason
    names = name(exc.filename)
    if exc.filename2 is not None:
        names += f" -> {name(exc.filename2)}"
    return f"{names}: {reason}"


def _quiet_stdout() -> None:
    """Point stdout at the null device, so that flushing it again (at exit) cannot fail
    on the closed pipe: the standard handling of :class:`BrokenPipeError`."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # replaced stdout (tests, notebooks)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def format_warning(message, category, filename, lineno, line=None) -> str:
    """:func:`warnings.formatwarning` for the command: a :class:`UserWarning` (the
    library's messages to the user) as one ``eft: warning: ...`` line; any other kind
    as Python writes it, with where it came from."""
    if issubclass(category, UserWarning):
        return f"eft: warning: {message}\n"
    return _python_format_warning(message, category, filename, lineno, line)


_python_format_warning = warnings.formatwarning


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    before, warnings.formatwarning = warnings.formatwarning, format_warning
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except EftError as exc:
        print(f"eft: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if os.environ.get("EFT_DEBUG"):
            raise
        print(f"eft: error: {os_error_message(exc)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        warnings.formatwarning = before


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
