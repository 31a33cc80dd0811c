"""`inspector witness serve|key`: run a witness for station checkpoints, print its verifier key."""

from __future__ import annotations

import argparse
from pathlib import Path

from inspector.errors import InspectorError


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InspectorError(f"--listen {text!r} must be HOST:PORT, e.g. 127.0.0.1:8091")
    return host or "127.0.0.1", int(port)


def _cmd_serve(args: argparse.Namespace) -> int:
    from inspector.witness.server import make_server

    host, port = _listen(args.listen)
    try:
        server, witness = make_server(Path(args.db), host, port)
    except OSError as exc:
        raise InspectorError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
    print(f"witness listening on http://{host}:{server.server_address[1]}; key: {witness.verifier}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        witness.close()
    return 0


def _cmd_key(args: argparse.Namespace) -> int:
    from inspector.witness.server import Witness

    witness = Witness(Path(args.db))
    print(witness.verifier)
    witness.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `witness` and its subcommands to the top-level subparsers."""
    p = sub.add_parser("witness", help="cosign station checkpoints (run it outside the station's account)")
    w = p.add_subparsers(dest="witness_command", required=True)
    c = w.add_parser("serve", help="HTTP witness: cosigns only consistent extensions of what it cosigned")
    c.add_argument("--db", required=True, help="the witness's own database (its key goes beside it, .key)")
    c.add_argument("--listen", default="127.0.0.1:8091", help="HOST:PORT (default 127.0.0.1:8091)")
    c.set_defaults(func=_cmd_serve)
    c = w.add_parser("key", help="print the witness's verifier key (for `log verify --witness-key`)")
    c.add_argument("--db", required=True)
    c.set_defaults(func=_cmd_key)
