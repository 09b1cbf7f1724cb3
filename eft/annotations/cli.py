"""``eft export``, ``eft inspect`` and ``eft validate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from eft._argtypes import finite_at_least_zero, integer_at_least

from .formats import FORMATS as FORMAT_CHOICES


def _export(args: argparse.Namespace) -> int:
    # lazy: the CLI's start-up imports no torch/numpy (tests/test_cli_startup.py)
    import dataclasses

    from eft.fitting.config import QualityRules

    from .api import detect_format, iter_columns, write_columns
    from .columns import Columns
    from .decisions import load_bound_decisions
    from .errors import AnnotationError
    from .filters import Selection
    from .h5 import H5Writer
    from .record import MISSABLE

    src, dst = Path(args.input), Path(args.output)
    fmt = args.format or detect_format(dst, for_writing=True)
    if src.resolve() == dst.resolve():
        raise AnnotationError(f"{dst}: output would overwrite the input; choose another name")
    selection = Selection(
        accepted_only=args.accepted_only,
        rules=QualityRules.strict() if args.strict else None,
        max_loss_2d=args.max_loss, max_reproj_px=args.max_reproj_px,
        max_abs_beta=args.max_abs_beta, min_keypoints=args.min_keypoints)
    review = load_bound_decisions(args.review, any_file=args.decisions_any_file) if (
        args.review) else None

    def select(batch):
        if review is not None:
            return dataclasses.replace(selection, decisions=review.resolve_columns(
                batch)).apply(batch, header.missing)
        return selection.apply(batch, header.missing)

    dropped: list = []
    header, batches = iter_columns(src, args.input_format,
                                   duplicates="dedupe" if args.dedupe else "error",
                                   report=dropped)
    filters = {k: v for k, v in {
        **selection.criteria(), "strict": args.strict, "review": args.review,
        "decisions_any_file": args.decisions_any_file}.items() if v}
    prov = header.provenance
    prov = dataclasses.replace(prov, extra={**prov.extra, "export": {
        "from": src.name, "from_format": header.format, "filters": filters}})
    options = {}
    if fmt in ("spin-npz", "humandata") and args.no_keypoints3d:
        options["keypoints3d"] = False
    if fmt == "spin-npz" and args.imgname_prefix:
        options["imgname_prefix"] = args.imgname_prefix
    total = kept = 0
    if fmt == "h5":
        with H5Writer(dst, prov, missing=header.missing) as writer:
            for batch in batches:
                total += len(batch)
                part = select(batch)
                kept += len(part)
                writer.append_columns(part)
    else:
        parts = []
        for batch in batches:
            total += len(batch)
            part = select(batch)
            kept += len(part)
            parts.append(part)
        write_columns(Columns.concat(parts), prov, dst, fmt, missing=header.missing,
                      **options)
    if review is not None:
        print(review.report())
    print(f"wrote {dst} ({fmt}): {kept} of {total} fits")
    if dropped:
        shown = ", ".join(f"{fid!r} (row {row})" for fid, row in dropped[:5])
        print(f"--dedupe: left out {len(dropped)} row(s) repeating an earlier fit id: "
              f"{shown}{' ...' if len(dropped) > 5 else ''}")
    lost = {"spin-npz": ["quality", "exemplar_meta", "keypoints3d_openpose"],
            "humandata": ["quality", "exemplar_meta"]}.get(fmt, [])
    lost = sorted(set(lost) | set(header.missing))
    if lost:
        print(f"not kept by {fmt}: " + "; ".join(MISSABLE.get(k, k) for k in lost))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    # lazy: the CLI's start-up imports no torch/numpy (tests/test_cli_startup.py)
    from .api import iter_columns
    from .summary import summarize

    if args.png or args.json:
        import json

        from .api import read_columns
        from .pictures import contact_sheet, inspect_report

        header, columns = read_columns(Path(args.file), args.input_format)
        if args.png:
            report = contact_sheet(header, columns, args.png, worst=args.worst,
                                   images=args.images, model=args.model, source=args.file)
        else:
            report = inspect_report(header, columns, args.worst)
        if args.json:
            print(json.dumps(report, indent=1))
            return 0
        print("\n".join(summarize(header, [columns]).lines()))  # read once: warned once
        print(f"wrote {args.png}")
        return 0
    header, batches = iter_columns(Path(args.file), args.input_format)
    print("\n".join(summarize(header, batches).lines()))
    return 0


def _validate(args: argparse.Namespace) -> int:
    # lazy: the CLI's start-up imports no torch/numpy (tests/test_cli_startup.py)
    from .api import iter_columns
    from .validate import validate_columns

    header, batches = iter_columns(Path(args.file), args.input_format, duplicates="keep")
    prov = header.provenance
    report = validate_columns(batches, header.missing, prov.focal_length, prov.img_res)
    lines = report.lines()
    if not args.quiet:
        for line in lines:
            print(line)
    verdict = "valid" if report.ok else "INVALID"
    unchecked = f"; not in the file, not checked: {', '.join(sorted(header.missing))}" if (
        header.missing) else ""
    print(f"{args.file}: {verdict} ({header.format}, schema version "
          f"{header.schema_version or 'none'}, {report.count} fits, "
          f"{_tally(report.errors, 'error')}, {_tally(report.warnings, 'warning')}"
          f"{unchecked})")
    return 0 if report.ok else 1


def _tally(table: dict, kind: str) -> str:
    """``"2 warning(s)"``: as many as the report has ``kind`` lines (one per check, each
    giving the number of fits it covers)."""
    return f"{sum(1 for t in table.values() if t.count)} {kind}(s)"


def register(subparsers) -> None:
    """Add ``export``, ``inspect`` and ``validate`` to the ``eft`` command."""
    fmt_help = f"input format (default: from the suffix / content): {', '.join(FORMAT_CHOICES)}"

    exp = subparsers.add_parser(
        "export", help="convert annotations between formats, optionally filtered",
        description="Convert an annotation file (eft-json, spin-npz, h5, humandata) into "
                    "another format. HDF5 input is streamed in batches.")
    exp.add_argument("input", help="annotation file to read")
    exp.add_argument("-o", "--output", required=True, help="file to write")
    exp.add_argument("--format", choices=FORMAT_CHOICES, default=None,
                     help="output format (default: from the output suffix: .json eft-json, "
                          ".humandata.npz humandata, .npz spin-npz, .h5 h5)")
    exp.add_argument("--input-format", choices=FORMAT_CHOICES, default=None, help=fmt_help)
    exp.add_argument("--accepted-only", action="store_true",
                     help="keep accepted fits only (after --strict re-judging, if given)")
    exp.add_argument("--strict", action="store_true",
                     help="re-judge acceptance with EFT's strict (MPII) rules")
    exp.add_argument("--max-loss", type=finite_at_least_zero, default=None,
                     help="keep fits whose final 2D loss <= this")
    exp.add_argument("--max-reproj-px", type=finite_at_least_zero, default=None,
                     help="keep fits whose mean reprojection error (px) <= this")
    exp.add_argument("--max-abs-beta", type=finite_at_least_zero, default=None,
                     help="keep fits whose max |beta| <= this")
    exp.add_argument("--min-keypoints", type=integer_at_least(0), default=None,
                     help="keep fits with at least this many annotated GT keypoints")
    exp.add_argument("--review-db", "--review", dest="review", default=None,
                     metavar="REVIEW.sqlite|DECISIONS.json",
                     help="annotators' decisions: the `eft review` database (the latest "
                          "decision per fit) or JSON {fit_id: accept|reject}; accept keeps, "
                          "reject drops, overriding the automatic criteria; flag leaves them "
                          "in charge. A database's decisions apply only to the exact fits "
                          "judged (same id and same pose, betas and camera)")
    exp.add_argument("--decisions-any-file", action="store_true",
                     help="with --review-db: match decisions by fit id alone (the latest "
                          "per id), even if they judged another file's or an older fit")
    exp.add_argument("--no-keypoints3d", action="store_true",
                     help="spin-npz / humandata: leave out the fits' 3D keypoints (S / "
                          "keypoints3d), so trainers apply no 3D loss to them")
    exp.add_argument("--dedupe", action="store_true",
                     help="keep the first row of each repeated fit id (listed) instead of "
                          "refusing the file; ids are never renumbered")
    exp.add_argument("--imgname-prefix", default="",
                     help="spin-npz: prefix for imgname (e.g. train2014/)")
    exp.set_defaults(func=_export)

    ins = subparsers.add_parser(
        "inspect", help="counts, quality histograms, acceptance by reason, provenance")
    ins.add_argument("file", help="annotation file")
    ins.add_argument("--input-format", choices=FORMAT_CHOICES, default=None, help=fmt_help)
    ins.add_argument("--png", metavar="OUT.png", default=None,
                     help="also draw a contact sheet: the N worst fits by each quality "
                          "measure, and histograms of loss, reprojection, |beta|, pose NLL")
    ins.add_argument("--worst", type=integer_at_least(0), default=4, metavar="N",
                     help="fits per measure on the sheet / in --json (default 4)")
    ins.add_argument("--images", default=None, metavar="ROOT",
                     help="where relative image paths are found (default: beside FILE, "
                          "then the folder its job ran in, then the working folder)")
    ins.add_argument("--model", default=None,
                     help="body model for the sheet (default: $EFT_BODY_MODEL, else the "
                          "embedded open model)")
    ins.add_argument("--json", action="store_true",
                     help="print counts, worst fits and histograms as JSON instead of text")
    ins.set_defaults(func=_inspect)

    val = subparsers.add_parser(
        "validate", help="check schema and values; exit 0 valid, 1 invalid, 2 unreadable",
        description="Check an annotation file: schema (shapes, version) and values (finite, "
                    "orthonormal rotations, rotmat/axis-angle and camera agreement, ranges, "
                    "unique ids). Exit code 0: valid; 1: invalid values; 2: unreadable, "
                    "corrupt or newer schema.")
    val.add_argument("file", help="annotation file")
    val.add_argument("--input-format", choices=FORMAT_CHOICES, default=None, help=fmt_help)
    val.add_argument("-q", "--quiet", action="store_true", help="print the verdict only")
    val.set_defaults(func=_validate)
