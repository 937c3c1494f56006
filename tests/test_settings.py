"""Settings come from the environment, secrets from NAME or NAME_FILE, and bad values are clear errors."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from migrations_engine.graph import GraphConfig, GraphConfigError
from msp_console.env import env_int, env_secret


def test_it_reads_a_secret_from_a_file(tmp_path, monkeypatch):
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cret\n")
    monkeypatch.delenv("GRAPH_CLIENT_SECRET", raising=False)
    monkeypatch.setenv("GRAPH_CLIENT_SECRET_FILE", str(secret_file))
    assert env_secret("GRAPH_CLIENT_SECRET") == "s3cret"


def test_it_refuses_a_secret_set_twice(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPH_CLIENT_SECRET", "a")
    monkeypatch.setenv("GRAPH_CLIENT_SECRET_FILE", str(tmp_path / "x"))
    with pytest.raises(ImproperlyConfigured, match="not both"):
        env_secret("GRAPH_CLIENT_SECRET")


def test_it_names_an_unreadable_secret_file(monkeypatch):
    monkeypatch.delenv("GRAPH_CLIENT_SECRET", raising=False)
    monkeypatch.setenv("GRAPH_CLIENT_SECRET_FILE", "/nonexistent/secret")
    with pytest.raises(ImproperlyConfigured, match="/nonexistent/secret"):
        env_secret("GRAPH_CLIENT_SECRET")


def test_it_refuses_a_non_integer(monkeypatch):
    monkeypatch.setenv("GRAPH_MAX_ATTEMPTS", "many")
    with pytest.raises(ImproperlyConfigured, match="GRAPH_MAX_ATTEMPTS"):
        env_int("GRAPH_MAX_ATTEMPTS", 6)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"client_id": ""}, "GRAPH_CLIENT_ID"),
        ({"client_secret": ""}, "No app credential"),
        ({"base_url": "http://graph.example.com"}, "https"),
        ({"authority_host": "login.example.com"}, "https"),
        ({"ca_bundle": "/nonexistent.pem"}, "not a file"),
    ],
)
def test_it_refuses_unusable_graph_settings(changes, message):
    good = {
        "authority_host": "https://login.microsoftonline.com",
        "base_url": "https://graph.microsoft.com",
        "client_id": "11111111-1111-1111-1111-111111111111",
        "client_secret": "x",
    }
    GraphConfig(**good)
    with pytest.raises(GraphConfigError, match=message):
        GraphConfig(**{**good, **changes})


def test_it_prefers_the_certificate_over_a_secret(settings, tmp_path):
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("app.example.com")
    key_file, cert_file = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_file.write_bytes(cert.private_key_pem.bytes())
    cert_file.write_bytes(cert.cert_chain_pems[0].bytes())
    settings.GRAPH_CLIENT_ID = "11111111-1111-1111-1111-111111111111"
    settings.GRAPH_CLIENT_SECRET = "also-set"
    settings.GRAPH_CLIENT_PRIVATE_KEY_FILE = str(key_file)
    settings.GRAPH_CLIENT_CERTIFICATE_FILE = str(cert_file)
    settings.GRAPH_CLIENT_CERTIFICATE_THUMBPRINT = ""
    config = GraphConfig.from_settings()
    assert config.client_secret == ""
    assert len(config.certificate_thumbprint) == 40
    assert "also-set" not in repr(config)
