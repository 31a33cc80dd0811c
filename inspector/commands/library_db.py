"""`inspector library list|add|retire|import|export|add-example|retire-example|thresholds`: the versioned library.

These live under the `library` command that cli.py builds (next to `library check`); every edit
needs a QA sign-in (--user) and a --reason, and makes a new library version.
"""

from __future__ import annotations

import argparse

from inspector.commands.user import add_db_argument, add_user_argument, open_log, sign_in
from inspector.errors import LibraryError


def _cmd_list(args: argparse.Namespace) -> int:
    with open_log(args) as log:
        version = args.version or log.library.current_version()
        if version == 0:
            print("no library stored yet; import one with `inspector library import FILE --user QA --reason ...`")
            return 0
        print(f"library version {version} (of {log.library.current_version()})")
        for label in log.library.labels(version):
            if label.retired and not args.all:
                continue
            flag = " [retired]" if label.retired else ""
            print(f"{label.id}: {label.name}, {label.disposition}, severity {label.severity}{flag}")
            for text, retired in label.descriptions:
                if args.all or not retired:
                    print(f"    - {text}{' [retired]' if retired else ''}")
            for example, retired in label.examples:
                if args.all or not retired:
                    box = f" box {list(example.box)}" if example.box else ""
                    why = f" ({example.reason})" if example.reason else ""
                    print(f"    [example {example.sha256[:12]}]{box}{why}{' [retired]' if retired else ''}")
    return 0


def _cmd_add(args: argparse.Namespace) -> int:
    from inspector.library.draft import Edit, publish
    from inspector.library.labels import NEW_LABEL_DISPOSITION, NEW_LABEL_SEVERITY, Label

    with open_log(args) as log:
        qa = sign_in(log, args.user)
        active = {s.id for s in log.library.labels() if not s.retired}
        if args.label in active:
            given = [f"--{n}" for n in ("name", "disposition", "severity", "threshold") if getattr(args, n) is not None]
            if given:
                raise LibraryError(
                    f"label {args.label!r} exists; {', '.join(given)} only apply to a new label"
                    " (retire it and add it again to change its fields)"
                )
            edits = [Edit("add_description", args.label, args.reason, text) for text in args.description]
            version = publish(log.library, log.library.current_version(), edits, qa)  # one version for all
        else:  # a new label: review and severity NEW_LABEL_SEVERITY unless QA says otherwise
            label = Label(
                args.label,
                args.name or args.label,
                args.disposition or NEW_LABEL_DISPOSITION,
                NEW_LABEL_SEVERITY if args.severity is None else args.severity,
                tuple(t.strip() for t in args.description),
                args.threshold,
            )
            version = log.library.add_label(label, qa, args.reason)
    print(f"library version {version} recorded")
    return 0


def _cmd_retire(args: argparse.Namespace) -> int:
    with open_log(args) as log:
        qa = sign_in(log, args.user)
        if args.description:
            version = log.library.retire_description(args.label, args.description, qa, args.reason)
        else:
            version = log.library.retire_label(args.label, qa, args.reason)
    print(f"library version {version} recorded")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from inspector.library.labels import load_library

    library = load_library(args.file)
    with open_log(args) as log:
        before = log.library.current_version()
        old_ids = set(log.library.library(before).label_ids) if before else set()
        version = log.library.import_library(library, sign_in(log, args.user), args.reason)
    retired = sorted(old_ids - set(library.label_ids))
    print(
        f"imported {args.file} as library version {version}"
        + (f"; it replaces version {before} as a whole" if before else "")
    )
    if retired:  # import replaces, it does not merge: say what left the library in force
        print(f"retired {len(retired)} label(s) that {args.file} lacks: {', '.join(retired)}")
    return 0


def _cmd_add_example(args: argparse.Namespace) -> int:
    from inspector.library.examples import read_example
    from inspector.library.labels import Example
    from inspector.store.decision_log import store_image

    box = tuple(args.box) if args.box else None
    with open_log(args) as log:
        qa = sign_in(log, args.user)
        rgb = read_example(Example(path=args.file, box=box), args.label)  # refused before anything is stored
        example = Example(sha256=store_image(log.sdb.image_root, rgb), reason=args.why or "", box=box)
        version = log.library.add_example(args.label, example, qa, args.reason)
    print(f"example {example.sha256[:12]} added to {args.label!r}: library version {version} recorded")
    return 0


def _cmd_retire_example(args: argparse.Namespace) -> int:
    with open_log(args) as log:
        qa = sign_in(log, args.user)
        matches = [
            e.sha256
            for s in log.library.labels()
            if s.id == args.label
            for e in s.active_examples
            if e.sha256.startswith(args.sha256.lower())
        ]
        if len(matches) != 1:
            raise LibraryError(
                f"{args.sha256!r} matches {len(matches)} active examples of {args.label!r};"
                " give more digits (see `inspector library list`)"
            )
        version = log.library.retire_example(args.label, matches[0], qa, args.reason)
    print(f"library version {version} recorded")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    with open_log(args) as log:
        path = log.library.export_yaml(args.file, args.version)
    print(f"wrote {path}")
    return 0


def _cmd_thresholds(args: argparse.Namespace) -> int:
    from inspector.config import DEFAULT_MODEL
    from inspector.learning.registry import ModelRegistry
    from inspector.library.threshold_review import record_review, shipped_model_id, station_flags

    with open_log(args) as log:
        version, library = log.library.in_force()
        if not version:
            raise LibraryError("no library stored yet; import one with `inspector library import FILE`")
        active = ModelRegistry(log).active()
        model_id = args.model_id or (active.model_id if active else shipped_model_id(DEFAULT_MODEL))
        flags = station_flags(log, library, model_id)
        if args.confirm:
            if not args.user or not args.reason:
                raise LibraryError("--confirm needs --user (QA) and --reason")
            record_review(log, sign_in(log, args.user), model_id, version, args.reason)
            print(f"hand-set thresholds of library version {version} confirmed for model {model_id[:12]}")
            return 0
    for flag in flags:
        print(f"review: {flag.reason}")
    if not flags:
        print(f"no hand-set threshold needs review for model {model_id[:12]}")
    return 0


def _library_subparsers(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    # cli.build_parser made `library` (with `check`) before calling register(); argparse keeps a
    # parser's subparsers only in its actions list, so find them there.
    parser = sub.choices["library"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the `library` command has no subcommands; cli.build_parser changed")


def register(sub: argparse._SubParsersAction) -> None:
    """Add list/add/retire/import/export under the existing `library` command."""
    from inspector.library.labels import NEW_LABEL_DISPOSITION, NEW_LABEL_SEVERITY

    lib = _library_subparsers(sub)
    c = lib.add_parser("list", help="labels and descriptions of the library in the database")
    c.add_argument("--version", type=int, help="a past version (default: the one in force)")
    c.add_argument("--all", action="store_true", help="show retired labels and descriptions too")
    c.set_defaults(func=_cmd_list)
    c = lib.add_parser("add", help="add a label, or descriptions to an existing label (QA)")
    c.add_argument("label", help="label id")
    c.add_argument("--description", action="append", required=True, help="a description; repeat for more")
    c.add_argument("--name", help="display name of a new label")
    c.add_argument(
        "--disposition", help=f"for a new label: accept, rework, scrap or review (default: {NEW_LABEL_DISPOSITION})"
    )
    c.add_argument(
        "--severity", type=int, help=f"for a new label: 0 (none) to 5 (critical) (default: {NEW_LABEL_SEVERITY})"
    )
    c.add_argument("--threshold", type=float, help="for a new label: probability below which a part needs review")
    c.set_defaults(func=_cmd_add)
    c = lib.add_parser("retire", help="retire a label or one of its descriptions (QA); nothing is deleted")
    c.add_argument("label", help="label id")
    c.add_argument("--description", help="retire only this description")
    c.set_defaults(func=_cmd_retire)
    c = lib.add_parser("add-example", help="add an example image to a label (QA)")
    c.add_argument("label", help="label id")
    c.add_argument("file", help="PNG, JPEG, TIFF or BMP image")
    c.add_argument("--box", type=int, nargs=4, metavar=("X0", "Y0", "X1", "Y1"), help="where the defect is")
    c.add_argument("--why", help="what the example shows (kept with it)")
    c.set_defaults(func=_cmd_add_example)
    c = lib.add_parser("retire-example", help="retire an example of a label (QA); nothing is deleted")
    c.add_argument("label", help="label id")
    c.add_argument("sha256", help="the example's hash (a unique prefix is enough)")
    c.set_defaults(func=_cmd_retire_example)
    c = lib.add_parser(
        "import",
        help="make a library YAML file the library in force, replacing the whole"
        " library: labels the file lacks are retired (QA)",
    )
    c.add_argument("file")
    c.set_defaults(func=_cmd_import)
    c = lib.add_parser("export", help="write a library version as YAML (never overwrites)")
    c.add_argument("file")
    c.add_argument("--version", type=int, help="a past version (default: the one in force)")
    c.set_defaults(func=_cmd_export)
    c = lib.add_parser(
        "thresholds",
        help="hand-set label thresholds not yet reviewed for the model in force; --confirm records the review (QA)",
    )
    c.add_argument("--model-id", help="model id (default: the registry's active model, else the default model)")
    c.add_argument("--confirm", action="store_true", help="confirm the hand-set thresholds for that model")
    c.add_argument("--reason", help="with --confirm: what was checked")
    add_user_argument(c, required=False)
    add_db_argument(c)
    c.set_defaults(func=_cmd_thresholds)
    for name in ("add", "retire", "import", "add-example", "retire-example"):
        lib.choices[name].add_argument("--reason", required=True, help="why (recorded with the new version)")
        add_user_argument(lib.choices[name])
    for name in ("list", "add", "retire", "import", "export", "add-example", "retire-example"):
        add_db_argument(lib.choices[name])
