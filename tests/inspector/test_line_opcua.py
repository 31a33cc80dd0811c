"""The station's OPC UA server against a real asyncua client on 127.0.0.1: the verdict nodes, the
secure default (Basic256Sha256 Sign&Encrypt, certificate made on first start, user sign-in), the
PLC handshake, and a trigger by node write."""

from __future__ import annotations

import asyncio
import json

import pytest

from inspector.frame.records import Decision
from inspector.line.opcua_out import DISPOSITION_CODES, NAMESPACE
from inspector.line.outputs import LineOutputs
from inspector.line.publisher import wait_until
from inspector.line.settings import LineConfig, OpcuaOutput, TriggerConfig
from linebroker import free_port
from linestation import chain_seqs, make_log, record

pytestmark = pytest.mark.timeout(180)


async def _client(url: str, tmp_path=None, server_cert=None, user: str = "", password: str = ""):
    from asyncua import Client, ua
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
    from cryptography.x509.oid import ExtendedKeyUsageOID

    client = Client(url, timeout=20)
    if server_cert is not None:
        key, cert = tmp_path / "plc_key.pem", tmp_path / "plc_cert.der"
        await setup_self_signed_certificate(
            key, cert, "urn:test:plc", "localhost", [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "test plc"}
        )
        client.application_uri = "urn:test:plc"
        await client.set_security(
            SecurityPolicyBasic256Sha256,
            str(cert),
            str(key),
            server_certificate=str(server_cert),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
    if user:
        client.set_user(user)
        client.set_password(password)
    await client.connect()
    return client


async def _read(client, *names: str) -> dict[str, object]:
    ns = await client.get_namespace_index(NAMESPACE)
    return {n: await client.get_node(f"ns={ns};s={n}").read_value() for n in names}


def test_secure_by_default_with_users_and_the_verdict_nodes(tmp_path):
    log, op, _, version = make_log(tmp_path / "station.db")
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    config = LineConfig(opcua=OpcuaOutput(endpoint=url, users={"plc": "plc-password"}))
    line = LineOutputs(config, log.sdb.path, poll_s=0.02)
    with line:
        assert wait_until(lambda: line.status()[0].connected, 60), line.status()
        cert = line.opcua.cert_file
        assert cert.exists() and oct(line.opcua.key_file.stat().st_mode & 0o777) == "0o600"
        first = record(log, op, version, 1)
        log.record_decision(Decision(first.inspection_id, "pick", "op", "dent", 3), op)
        line.committed()
        assert wait_until(lambda: line.status()[0].backlog == 0 and line.status()[0].delivered == 2, 20)

        async def check() -> dict[str, object]:
            from asyncua import ua

            with pytest.raises(ua.UaError):  # an unencrypted session is refused: no None endpoint by default
                plain = await _client(url, user="plc", password="plc-password")
                await plain.disconnect()
            with pytest.raises(ua.UaError):  # a wrong password is refused
                bad = await _client(url, tmp_path, cert, "plc", "wrong")
                await bad.disconnect()
            client = await _client(url, tmp_path, cert, "plc", "plc-password")
            try:
                values = await _read(
                    client,
                    "Line.Seq",
                    "Line.InspectionId",
                    "Line.Verdict",
                    "Line.DispositionCode",
                    "Line.NeedsReview",
                    "Line.Late",
                    "Line.VerdictJson",
                    "Line.FinalDispositionCode",
                    "Line.FinalInspectionId",
                    "Line.StationState",
                    "Line.Heartbeat",
                )
                await asyncio.sleep(1.5)
                values["beat2"] = (await _read(client, "Line.Heartbeat"))["Line.Heartbeat"]
                return values
            finally:
                await client.disconnect()

        values = asyncio.run(check())
    seq = chain_seqs(log, ("inspections",))[0]
    assert values["Line.Seq"] == seq and values["Line.InspectionId"] == first.inspection_id
    assert values["Line.Verdict"] == "rework" and values["Line.DispositionCode"] == DISPOSITION_CODES["rework"]
    assert values["Line.NeedsReview"] is False and values["Line.Late"] is False
    assert json.loads(values["Line.VerdictJson"])["inspection_id"] == first.inspection_id
    assert values["Line.FinalDispositionCode"] == DISPOSITION_CODES["scrap"]  # the operator picked "dent"
    assert values["Line.FinalInspectionId"] == first.inspection_id and values["Line.StationState"] == "running"
    assert values["beat2"] > values["Line.Heartbeat"]
    assert b"plc-password" not in (tmp_path / "station.db").read_bytes()
    log.close()


def test_handshake_waits_for_the_plc_and_a_node_write_triggers(tmp_path):
    log, op, _, version = make_log(tmp_path / "station.db")
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    config = LineConfig(
        opcua=OpcuaOutput(endpoint=url, security="None", handshake=True),
        trigger=TriggerConfig(opcua=True, deadline_s=5.0),
    )
    line = LineOutputs(config, log.sdb.path, poll_s=0.02)
    with line:
        assert wait_until(lambda: line.status()[0].connected, 30)
        ids = [record(log, op, version, i).inspection_id for i in range(3)]
        seqs = chain_seqs(log, ("inspections",))

        async def plc() -> list[int]:
            from asyncua import ua

            client = await _client(url)
            try:
                ns = await client.get_namespace_index(NAMESPACE)

                def node(name, ns=ns):
                    return client.get_node(f"ns={ns};s={name}")

                seen = []
                for _ in range(3):
                    for _ in range(500):  # the next verdict is shown only after the previous one is acknowledged
                        shown = await node("Line.Seq").read_value()
                        if shown and shown not in seen:
                            break
                        await asyncio.sleep(0.02)
                    seen.append(shown)
                    assert wait_until(lambda: line.status()[0].backlog == 3 - len(seen) + 1, 5), line.status()
                    await node("Line.VerdictAck").write_value(ua.Variant(shown, ua.VariantType.Int64))
                await node("Trigger.ProductId").write_value(ua.Variant("hinge", ua.VariantType.String))
                await node("Trigger.PartId").write_value(ua.Variant("PLC-9", ua.VariantType.String))
                return seen
            finally:
                await client.disconnect()

        assert asyncio.run(plc()) == seqs
        assert wait_until(lambda: line.status()[0].backlog == 0, 10)
        trigger = line.triggers.next(1.0)
    assert trigger is not None and (trigger.part_id, trigger.product_id, trigger.origin) == ("PLC-9", "hinge", "opcua")
    assert len(ids) == 3
    log.close()
