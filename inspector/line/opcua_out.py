"""The OPC UA output (asyncua): the station serves its verdicts as nodes the PLC reads.

The server runs on its own thread and event loop. Basic256Sha256 Sign&Encrypt by default, with a
self-signed certificate made on first start under [output.opcua] cert_dir (default: beside the
database). Users come from [output.opcua] users; with none configured the server accepts anonymous
sessions (still encrypted). The NodeIds and disposition codes are documented in
docs/line-integration.md; `NODES` below is that table.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import json
import socket
import threading
from pathlib import Path
from typing import Any

from inspector.line.outbox import Message
from inspector.line.publisher import ChannelError
from inspector.line.settings import OpcuaOutput
from inspector.line.trigger import TriggerError, TriggerQueue

NAMESPACE = "urn:rankclip:inspector:line"
DISPOSITION_CODES = {"accept": 1, "rework": 2, "scrap": 3, "review": 4}  # 0: no verdict yet
# String NodeId (in NAMESPACE) -> (variant type name, initial value, writable by clients)
NODES: dict[str, tuple[str, Any, bool]] = {
    "Line.Seq": ("Int64", 0, False),  # written LAST for each verdict: read the others after it changes
    "Line.InspectionId": ("Int64", 0, False),
    "Line.PartId": ("String", "", False),
    "Line.ProductId": ("String", "", False),
    "Line.Verdict": ("String", "", False),
    "Line.DispositionCode": ("Int32", 0, False),
    "Line.NeedsReview": ("Boolean", False, False),
    "Line.Late": ("Boolean", False, False),
    "Line.TimeoutFlag": ("Boolean", False, False),
    "Line.VerdictJson": ("String", "", False),
    "Line.VerdictAck": ("Int64", 0, True),
    "Line.FinalSeq": ("Int64", 0, False),
    "Line.FinalInspectionId": ("Int64", 0, False),
    "Line.FinalPartId": ("String", "", False),
    "Line.FinalDispositionCode": ("Int32", 0, False),
    "Line.Heartbeat": ("UInt32", 0, False),
    "Line.StationState": ("String", "starting", False),
    "Line.TriggersMissed": ("UInt32", 0, False),
    "Trigger.ProductId": ("String", "", True),
    "Trigger.PartId": ("String", "", True),  # a client's write of this node requests a capture
}


def app_uri() -> str:
    """The server's ApplicationUri, also in its certificate."""
    return f"urn:rankclip:inspector:{socket.gethostname()}"


def cert_paths(cfg: OpcuaOutput, db_path: Path) -> tuple[Path, Path]:
    """(private key PEM, certificate DER) of the server."""
    folder = Path(cfg.cert_dir) if cfg.cert_dir else db_path.with_name(db_path.name + ".opcua")
    return folder / "server_key.pem", folder / "server_cert.der"


class OpcuaChannel:
    """An OPC UA server whose nodes show the latest verdict; `deliver` writes them in seq order."""

    name = "opcua"

    def __init__(self, cfg: OpcuaOutput, db_path: Path, triggers: TriggerQueue | None = None) -> None:
        self.cfg, self.db_path, self.triggers = cfg, Path(db_path), triggers
        self.address, self.last_error = cfg.endpoint, ""
        self.key_file, self.cert_file = cert_paths(cfg, self.db_path)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._nodes: dict[str, Any] = {}
        self._state = "starting"
        self._missed_seen = 0

    # --- the publisher's thread --------------------------------------------------------------

    def connect(self, timeout: float) -> None:
        """Start the server (certificate made on first start); ChannelError if it cannot listen."""
        self.close()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="line-opcua-server", daemon=True)
        self._thread.start()
        try:
            ready.result(timeout=max(timeout, 30.0))  # the first start makes an RSA key
        except Exception as exc:  # noqa: BLE001 - whatever the server thread raised, as one line
            self.last_error = f"the OPC UA server could not start on {self.address}: {exc}"
            self.close()
            raise ChannelError(self.last_error) from None

    def is_connected(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._stopping is not None

    def deliver(self, messages: list[Message], timeout: float) -> int:
        if self._loop is None or not self.is_connected():
            raise ChannelError(f"the OPC UA server on {self.address} is not running")
        future = asyncio.run_coroutine_threadsafe(self._show(messages, timeout), self._loop)
        try:
            return future.result(timeout + 5.0)
        except Exception as exc:  # noqa: BLE001 - asyncua's errors have no common base; the publisher retries
            self.last_error = f"the OPC UA server on {self.address} failed: {exc}"
            raise ChannelError(self.last_error) from None

    def set_state(self, state: str) -> None:
        """The station state the PLC sees (Line.StationState)."""
        self._state = state
        loop = self._loop
        if loop is not None and self.is_connected():
            asyncio.run_coroutine_threadsafe(self._write({"Line.StationState": state}), loop)  # never waits (GUI)

    def close(self) -> None:
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None and loop.is_running():
            loop.call_soon_threadsafe(stopping.set)
        if thread is not None:
            thread.join(15.0)
        self._thread = self._loop = self._stopping = None

    # --- the server's thread ------------------------------------------------------------------

    def _serve(self, ready: concurrent.futures.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        finally:
            loop.close()

    async def _main(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            server = await self._build()
            await server.start()
        except Exception as exc:  # noqa: BLE001 - asyncua raises OSError, ValueError, its own errors
            ready.set_exception(exc)
            return
        stopping = asyncio.Event()
        self._stopping = stopping
        ready.set_result(None)
        try:
            beat = 0
            while not stopping.is_set():
                beat = (beat + 1) % 2**32
                await self._write({"Line.Heartbeat": beat, **self._missed()})
                try:
                    await asyncio.wait_for(stopping.wait(), 1.0)
                except TimeoutError:
                    pass
        finally:
            self._stopping = None
            await server.stop()

    def _missed(self) -> dict[str, Any]:
        missed = self.triggers.missed if self.triggers is not None else 0
        if missed == self._missed_seen:
            return {}
        self._missed_seen = missed
        return {"Line.TriggersMissed": missed % 2**32, "Line.TimeoutFlag": True}

    async def _build(self) -> Any:
        from asyncua import Server, ua
        from asyncua.common.callback import CallbackType

        anonymous = self.cfg.allow_anonymous or not self.cfg.users
        server = Server(user_manager=_Users(self.cfg.users, anonymous))
        await server.init()
        await server.set_application_uri(app_uri())  # the certificate names it: clients check that they match
        server.set_endpoint(self.cfg.endpoint)
        server.set_server_name("RANKCLIP inspection station")
        if self.cfg.security == "None":
            policy = ua.SecurityPolicyType.NoSecurity
        else:
            await self._certificate()
            await server.load_certificate(str(self.cert_file))
            await server.load_private_key(str(self.key_file))
            policy = ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt
        server.set_security_policy([policy], permission_ruleset=_Rules(anonymous))
        server.set_identity_tokens([ua.UserNameIdentityToken] + ([ua.AnonymousIdentityToken] if anonymous else []))
        ns = await server.register_namespace(NAMESPACE)
        folders = {
            name: await server.nodes.objects.add_object(ua.NodeId(name, ns), f"{ns}:{name}")
            for name in ("Line", "Trigger")
        }
        for node_id, (vtype, initial, writable) in NODES.items():
            folder, _, short = node_id.partition(".")
            node = await folders[folder].add_variable(
                ua.NodeId(node_id, ns), f"{ns}:{short}", ua.Variant(initial, getattr(ua.VariantType, vtype))
            )
            if writable:
                await node.set_writable()
            self._nodes[node_id] = node
        await self._write({"Line.StationState": self._state})
        server.subscribe_server_callback(CallbackType.PostWrite, self._on_write)
        return server

    async def _certificate(self) -> None:
        from asyncua.crypto.cert_gen import setup_self_signed_certificate
        from cryptography.x509.oid import ExtendedKeyUsageOID

        self.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        host = socket.gethostname()
        await setup_self_signed_certificate(
            self.key_file,
            self.cert_file,
            app_uri(),
            host,
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            {"commonName": f"RANKCLIP station {host}"},
        )
        self.key_file.chmod(0o600)

    async def _write(self, values: dict[str, Any]) -> None:
        from asyncua import ua

        for node_id, value in values.items():
            vtype = getattr(ua.VariantType, NODES[node_id][0])
            await self._nodes[node_id].write_value(ua.Variant(value, vtype))

    async def _show(self, messages: list[Message], timeout: float) -> int:
        loop = asyncio.get_running_loop()
        for done, m in enumerate(messages):
            p = m.payload
            if m.kind == "decision":
                await self._write(
                    {
                        "Line.FinalInspectionId": p["inspection_id"],
                        "Line.FinalPartId": p["part_id"] or "",
                        "Line.FinalDispositionCode": DISPOSITION_CODES.get(p["disposition"], 0),
                        "Line.FinalSeq": m.seq,
                    }
                )
                continue
            verdict = p["verdict"]
            await self._write(
                {
                    "Line.InspectionId": p["inspection_id"],
                    "Line.PartId": p["part_id"] or "",
                    "Line.ProductId": p["product_id"] or "",
                    "Line.Verdict": verdict["disposition"],
                    "Line.DispositionCode": DISPOSITION_CODES.get(verdict["disposition"], 0),
                    "Line.NeedsReview": bool(verdict["needs_review"]),
                    "Line.Late": bool(p["late"]),
                    "Line.TimeoutFlag": bool(p["late"]),
                    "Line.VerdictJson": json.dumps(p, sort_keys=True),
                    "Line.Seq": m.seq,
                }
            )
            if self.cfg.handshake:  # the PLC acknowledges by writing the seq to Line.VerdictAck
                end = loop.time() + min(timeout, 1.0)  # back to the publisher each second: a fresh backlog
                while int(await self._nodes["Line.VerdictAck"].read_value()) < m.seq:
                    if loop.time() > end or (self._stopping is not None and self._stopping.is_set()):
                        return done
                    await asyncio.sleep(0.01)
        return len(messages)

    async def _on_write(self, event: Any, _dispatcher: Any) -> None:
        if self.triggers is None:
            return
        for write, status in zip(event.request_params.NodesToWrite, event.response_params):
            if write.NodeId.Identifier == "Trigger.PartId" and status.is_good():
                product = await self._nodes["Trigger.ProductId"].read_value()
                try:
                    self.triggers.put(str(write.Value.Value.Value or ""), str(product or ""), "opcua")
                except TriggerError:
                    pass  # queued as a trigger_refused event by put()


class _Rules:
    """Signed-in users read and write (browse, read, subscribe, write); anonymous sessions too when allowed.
    Nobody changes the address space."""

    def __init__(self, anonymous: bool) -> None:
        from asyncua import ua
        from asyncua.crypto.permission_rules import USER_TYPES, UserRole

        self.roles = {UserRole.User, UserRole.Admin} | ({UserRole.Anonymous} if anonymous else set())
        self.allowed = set(map(ua.NodeId, USER_TYPES))

    def check_validity(self, user: Any, action_type_id: Any, body: Any) -> bool:
        return user.role in self.roles and action_type_id in self.allowed


class _Users:
    """asyncua's UserManager: the configured user names and passwords (compared in constant time)."""

    def __init__(self, users: dict[str, str], anonymous: bool) -> None:
        self.users, self.anonymous = dict(users), anonymous

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> Any:
        from asyncua.crypto.permission_rules import User, UserRole

        if username is None:
            return User(role=UserRole.Anonymous) if self.anonymous else None
        expected = self.users.get(username)
        if expected is not None and password is not None and hmac.compare_digest(expected.encode(), password.encode()):
            return User(role=UserRole.User, name=username)
        return None
