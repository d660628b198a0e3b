"""ca-config.json parsing: cfssl's samples load, durations follow Go, and every bad field is named."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.pki.support import DATA
from webhook.errors import PkiError
from webhook.pki.config import BUILTIN, format_duration, load_config, parse_config, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8760h", timedelta(hours=8760)),
        ("43800h", timedelta(hours=43800)),
        ("1h30m", timedelta(minutes=90)),
        ("90m", timedelta(minutes=90)),
        ("1.5h", timedelta(minutes=90)),
        ("2h45m30s", timedelta(hours=2, minutes=45, seconds=30)),
        ("500ms", timedelta(milliseconds=500)),
    ],
    ids=lambda v: str(v),
)
def test_go_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text, "expiry") == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("1y", "expiry: must be a duration like \"8760h\" (units ns, us, ms, s, m, h; got '1y')"),
        ("365d", "expiry: must be a duration like \"8760h\" (units ns, us, ms, s, m, h; got '365d')"),
        ("8760", "expiry: must be a duration like \"8760h\" (units ns, us, ms, s, m, h; got '8760')"),
        ("-1h", "expiry: must be a duration like \"8760h\" (units ns, us, ms, s, m, h; got '-1h')"),
        ("0h", "expiry: must be longer than zero (got '0h')"),
        ("", "expiry: must be a duration like \"8760h\" (got '')"),
        (8760, 'expiry: must be a duration like "8760h" (got 8760)'),
    ],
    ids=["years", "days", "no-unit", "negative", "zero", "empty", "number"],
)
def test_bad_durations(raw: object, message: str) -> None:
    with pytest.raises(PkiError) as err:
        parse_duration(raw, "expiry")
    assert str(err.value) == message


def test_format_duration_round_trips_whole_hours() -> None:
    assert format_duration(timedelta(hours=8760)) == "8760h"
    assert format_duration(timedelta(minutes=90)) == "1h30m"


def test_cfssl_sample_config_is_accepted() -> None:
    config = load_config(DATA / "ca-config.json")
    assert sorted(config.profiles) == ["client", "member", "www"]
    assert config.default.expiry == timedelta(hours=168)
    www = config.profile("www")
    assert www.expiry == timedelta(hours=8760)
    assert www.key_usages == {"digital_signature", "key_encipherment"}
    assert www.ext_key_usages == (ExtendedKeyUsageOID.SERVER_AUTH,)
    member = config.profile("member")
    assert member.ext_key_usages == (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


def test_committed_config_matches_builtin_profiles() -> None:
    committed = load_config(DATA.parents[2] / "certs" / "ca-config.json")
    for name in ("server", "client", "peer"):
        assert committed.profile(name).usages == BUILTIN.profile(name).usages
        assert committed.profile(name).expiry == BUILTIN.profile(name).expiry


def test_builtin_profiles_are_cfssl_server_client_peer() -> None:
    assert BUILTIN.profile("server").ext_key_usages == (ExtendedKeyUsageOID.SERVER_AUTH,)
    assert BUILTIN.profile("client").ext_key_usages == (ExtendedKeyUsageOID.CLIENT_AUTH,)
    assert BUILTIN.profile("peer").ext_key_usages == (
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )


def test_profile_inherits_default_expiry() -> None:
    config = parse_config(
        {"signing": {"default": {"expiry": "720h"}, "profiles": {"web": {"usages": ["server auth"]}}}}, "cfg"
    )
    assert config.profile("web").expiry == timedelta(hours=720)


def _profiles(**profiles: Any) -> dict[str, Any]:
    return {"signing": {"default": {"expiry": "8760h"}, "profiles": profiles}}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "cfg: must be a JSON object"),
        ({}, "cfg: missing object 'signing'"),
        ({"signing": {}, "extra": 1}, "cfg: unknown field 'extra' (allowed: signing)"),
        ({"signing": {}, "auth_keys": {}}, "cfg.auth_keys: cfssl field not supported by podgate"),
        (
            {"signing": {"defaults": {}}},
            "cfg: signing: unknown field 'defaults' (allowed: default, profiles)",
        ),
        (
            _profiles(web={"usages": ["server auth", "web auth"], "expiry": "1h"}),
            "cfg: signing.profiles.web.usages: unknown usage 'web auth'",
        ),
        (_profiles(web={"expiry": "1h"}), "cfg: signing.profiles.web: missing field 'usages'"),
        (
            _profiles(web={"usages": [], "expiry": "1h"}),
            "cfg: signing.profiles.web.usages: must be a non-empty list of usage names (got [])",
        ),
        (
            _profiles(web={"usages": ["server auth"], "expiry": "1y"}),
            'cfg: signing.profiles.web.expiry: must be a duration like "8760h" (units ns, us, ms, s, m, h; '
            "got '1y')",
        ),
        (
            _profiles(web={"usages": ["server auth"], "expires": "1h"}),
            "cfg: signing.profiles.web: unknown field 'expires' (allowed: backdate, expiry, usages)",
        ),
        (
            _profiles(web={"usages": ["server auth"], "ocsp_url": "http://ocsp"}),
            "cfg: signing.profiles.web.ocsp_url: cfssl field not supported by podgate",
        ),
        (
            _profiles(ca={"usages": ["cert sign", "crl sign"], "expiry": "1h"}),
            "cfg: signing.profiles.ca.usages: usage 'cert sign' is for CA certificates; "
            "profiles issue leaves only",
        ),
        (
            _profiles(x={"usages": ["encipher only"], "expiry": "1h"}),
            'cfg: signing.profiles.x.usages: "encipher only" and "decipher only" need "key agreement"',
        ),
    ],
    ids=[
        "not-object",
        "no-signing",
        "unknown-top",
        "auth-keys",
        "unknown-signing",
        "unknown-usage",
        "no-usages",
        "empty-usages",
        "bad-expiry",
        "misspelt-field",
        "unsupported-field",
        "ca-usage",
        "encipher-only",
    ],
)
def test_config_errors_name_the_field(raw: object, message: str) -> None:
    with pytest.raises(PkiError) as err:
        parse_config(raw, "cfg")
    assert str(err.value) == message


def test_unknown_profile_is_an_error_not_the_default() -> None:
    with pytest.raises(PkiError) as err:
        load_config(DATA / "ca-config.json").profile("server")
    assert (
        str(err.value)
        == f"{DATA / 'ca-config.json'}: no signing profile 'server' (profiles: client, member, www)"
    )


def test_unreadable_and_malformed_files(tmp_path: Any) -> None:
    with pytest.raises(PkiError, match="cannot read"):
        load_config(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"signing": {\n  "default": }')
    with pytest.raises(PkiError) as err:
        load_config(broken)
    assert str(err.value) == f"{broken}:2: not valid JSON: Expecting value"
