"""``python -m graph_sim serve`` as a separate process: files, readiness signal, clean stop."""

from __future__ import annotations

import json
import signal
import ssl

import httpx

from graph_sim.testing import simulator_process

FLEET_KEYS = {
    "authority_host",
    "graph_base_url",
    "ca_bundle",
    "client_id",
    "client_secret",
    "client_certificate",
    "client_private_key",
    "client_certificate_thumbprint",
    "time_scale",
    "tenants",
    "staff_sign_in",
}
TENANT_KEYS = {
    "tenant_id",
    "domain",
    "display_name",
    "consent_granted",
    "roles",
    "licence",
    "security_defaults",
    "user_count",
    "break_glass_upns",
    "notes",
}


def test_it_writes_its_files_and_serves_on_a_free_port(tmp_path):
    with simulator_process(tmp_path, "--no-throttle") as info:
        assert set(info) >= {"pid", "port", "authority_host", "graph_base_url", "ca_bundle", "time_scale"}
        assert info["time_scale"] == 1.0
        assert info["port"] > 0 and info["authority_host"] == f"https://127.0.0.1:{info['port']}"
        for name in ("ca.pem", "app-cert.pem", "app-key.pem", "fleet.json"):
            assert (tmp_path / name).exists()
        fleet = json.loads((tmp_path / "fleet.json").read_text())
        assert set(fleet) == FLEET_KEYS and fleet["authority_host"] == info["authority_host"]
        assert len(fleet["tenants"]) >= 7 and all(TENANT_KEYS <= set(t) for t in fleet["tenants"])
        assert {t["licence"] for t in fleet["tenants"]} == {"P2", "P1", "Free"}
        assert (
            len(fleet["client_certificate_thumbprint"]) == 40
            and fleet["client_certificate_thumbprint"].isupper()
        )
        ctx = ssl.create_default_context(cafile=info["ca_bundle"])
        with httpx.Client(verify=ctx, trust_env=False) as http:
            health = http.get(f"{info['authority_host']}/_sim/health").json()
            assert health["status"] == "ok" and health["throttle_enabled"] is False
            assert health["time_scale"] == 1.0 and fleet["time_scale"] == 1.0
        proc = info["process"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_it_builds_a_generated_fleet_from_a_seed(tmp_path):
    with simulator_process(tmp_path, "--tenants", "4", "--users", "30", "--seed", "7", fleet="generated"):
        fleet = json.loads((tmp_path / "fleet.json").read_text())
    assert len(fleet["tenants"]) == 4 and all(t["user_count"] == 30 for t in fleet["tenants"])
    assert all(t["licence"] in ("P1", "P2") and t["consent_granted"] for t in fleet["tenants"])
    assert all(len(t["break_glass_upns"]) == 1 for t in fleet["tenants"])


def test_it_answers_by_the_name_clients_use_in_a_container_network(tmp_path):
    """`--public-host graph-sim` (compose's demo profile): URLs, login metadata and certificate name it."""
    import socket

    with simulator_process(tmp_path, "--public-host", "graph-sim") as info:
        port = info["port"]
        assert info["authority_host"] == f"https://graph-sim:{port}"
        fleet = json.loads((tmp_path / "fleet.json").read_text())
        assert fleet["graph_base_url"] == f"https://graph-sim:{port}"
        ctx = ssl.create_default_context(cafile=info["ca_bundle"])
        with socket.create_connection(("127.0.0.1", port)) as raw:
            with ctx.wrap_socket(raw, server_hostname="graph-sim") as tls:  # verifies the name
                tls.sendall(b"GET /common/v2.0/.well-known/openid-configuration HTTP/1.1\r\n")
                tls.sendall(f"Host: graph-sim:{port}\r\nConnection: close\r\n\r\n".encode())
                answer = b""
                while chunk := tls.recv(65536):
                    answer += chunk
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert body["token_endpoint"].startswith(f"https://graph-sim:{port}/")
        with socket.create_connection(("127.0.0.1", port)) as raw:
            try:
                ctx.wrap_socket(raw, server_hostname="other-name")
            except ssl.SSLCertVerificationError:
                pass
            else:
                raise AssertionError("the certificate names only the simulator's own names")
