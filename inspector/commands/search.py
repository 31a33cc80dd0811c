"""`inspector search "TEXT" | --like IMAGE_OR_ID` and `inspector search-index`: the history by words
or by example, and the backfill of its vectors.

Results print as JSON lines (--json) with exactly the keys of inspector.search.service.JSON_KEYS,
else as a table; which model's vectors answered goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

from inspector.commands.user import add_db_argument, open_log


def _scorers(log, args: argparse.Namespace):
    """(the station's scorer, the scorer whose vectors answer) — the same one unless re-embedding runs."""
    from inspector.config import load_config
    from inspector.learning.registry import ModelRegistry
    from inspector.search.service import SearchService, scorer_error
    from inspector.station_model import ModelChoice, choose_model, load_choice

    config = load_config(args.config)
    current = load_choice(choose_model(log, args.model or config.model.ref), args.device)
    service = SearchService(log)
    answering = service.answering_model(current.model_id)
    if answering == current.model_id:
        return service, current, current
    try:
        entry = ModelRegistry(log).get(answering)
        return service, current, load_choice(ModelChoice(entry.checkpoint, "registry", answering), args.device)
    except Exception as exc:  # any failure: say which model and what to do
        raise scorer_error(answering) from exc


def _cmd_search(args: argparse.Namespace) -> int:
    from inspector.errors import DataError
    from inspector.search.meta import SearchFilter
    from inspector.search.service import answer_lines

    if bool(args.text) == bool(args.like):
        raise DataError("give either a search TEXT or --like IMAGE_PATH_OR_INSPECTION_ID (not both)")
    f = SearchFilter(
        since=args.since,
        until=args.until,
        station=args.station,
        label=args.label,
        verdict=args.verdict,
        state=args.state,
    )
    with open_log(args) as log:
        service, current, scorer = _scorers(log, args)
        if args.text:
            answer = service.text(scorer, args.text, current.model_id, f, args.top)
        else:
            answer = service.like(scorer, args.like, current.model_id, f, args.top)
        print(answer.note(), file=sys.stderr)
        if args.json:
            for line in answer_lines(answer):
                print(line)
        else:
            for h in answer.hits:
                print(
                    f"{h.inspection_id:>8}  {h.score:7.4f}  {h.captured_at}  #1 {h.label:<16}"
                    f" decided {h.decided_label or '-'}"
                )
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    from inspector.search.indexer import backfill
    from inspector.search.vectors import VectorStore

    with open_log(args) as log:
        _, current, _ = _scorers(log, args)
        store = VectorStore(log.sdb.path)

        def progress(done: int, total: int) -> None:
            print(f"\rembedded {done}/{total}", end="", file=sys.stderr, flush=True)

        n = backfill(log, store, current, limit=args.limit, pause_s=args.pause, progress=progress)
        print(file=sys.stderr)
        print(json.dumps({"embedded": n, "model_id": current.model_id, "searchable": store.counts()}))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    add_db_argument(p)
    p.add_argument("--config", help="station TOML file (its model, when the registry has no active one)")
    p.add_argument("--model", help="model name or checkpoint instead of the station's (tests, comparisons)")
    p.add_argument("--device", default=None)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `search` and `search-index`."""
    p = sub.add_parser("search", help="search past inspections by words or by an example image")
    p.add_argument("text", nargs="?", help="what to look for, e.g. 'crack near the edge'")
    p.add_argument("--like", help="an image file or an inspection id: find parts that look like it")
    p.add_argument("--since", help="captured at or after (UTC, ISO 8601)")
    p.add_argument("--until", help="captured before (UTC, ISO 8601)")
    p.add_argument("--station", help="the source (camera) id that recorded the inspection")
    p.add_argument("--label", help="the logged #1 label id")
    p.add_argument("--verdict", help="the proposed disposition (e.g. ok, scrap, review)")
    p.add_argument("--state", help="decision state: undecided, decided, agreed, overridden, none_of_these, rejected")
    p.add_argument("--top", type=int, default=10, help="how many results (default 10)")
    p.add_argument(
        "--json",
        action="store_true",
        help="JSON lines with the keys inspection_id, score, image_sha256, captured_at, label, decided_label",
    )
    _common(p)
    p.set_defaults(func=_cmd_search)
    p = sub.add_parser("search-index", help="embed past inspections for search (backfill, with progress)")
    p.add_argument("--limit", type=int, default=None, help="at most this many inspections this run")
    p.add_argument("--pause", type=float, default=0.0, help="seconds to sleep between inspections (throttle)")
    _common(p)
    p.set_defaults(func=_cmd_index)
