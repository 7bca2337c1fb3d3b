"""The Open API client against the local sandbox (devtools/jimi_sandbox), which checks signatures, tokens and
parameters the way Jimi documents them: signing (the test vectors of docs/jimi.md), tokens cached, refreshed early and
renewed on 1004, back-off on -1 and 1006, and every documented error code raised as its own exception."""

from __future__ import annotations

import time

import httpx
import pytest

from events.jimi import errors
from events.jimi.client import TOKENS, JimiClient, endpoint_for
from events.jimi.credentials import Credentials, CredentialsMissing, credentials_resolve
from events.jimi.signing import password_md5, sign

# docs/jimi.md, "Request and signing": made-up credentials, computed with the documented steps.
VECTORS = [
    ({"foo": "1", "bar": "2", "foo_bar": "3", "foobar": "4", "empty": ""}, "s3cr3t",
     "9F5485BE3BE9045DF1AEC78C3E78C9D8"),
    ({"foo": 1, "bar": 2, "foo_bar": 3, "foobar": 4}, "h9lri085eachcz4sn7gwnkh6j0jt0yz4",
     "2CEB0E3B7EA209555DFFC9296378FDD9"),
    ({"method": "jimi.oauth.token.get", "timestamp": "2026-01-13 02:24:37", "app_key": "EXAMPLEAPPKEY",
      "sign_method": "md5", "v": "1.0", "format": "json", "user_id": "fleet_example",
      "user_pwd_md5": "534d9d0f38a5e68aa17d36fd5edc4fa5", "expires_in": 7200},
     "EXAMPLESECRET", "776A2057E899B1FBFE6495B40736E2E9"),
    ({"method": "jimi.oauth.token.get", "timestamp": "2025-05-08 10:23:00", "app_key": "TESTAPPKEY0001",
      "sign_method": "md5", "v": "1.0", "format": "json", "user_id": "demo_user",
      "user_pwd_md5": "482c811da5d5b4bc6d497ffa98491e38", "expires_in": 7200},
     "TESTSECRET0001", "BDDFB1BD3C6B2CC59A21726116011D60"),
]  # fmt: skip


@pytest.mark.parametrize(("params", "secret", "expected"), VECTORS)
def test_it_signs_the_documented_test_vectors(params, secret, expected):
    assert sign(params, secret) == expected
    assert sign({**params, "sign": "ignored", "nothing": None}, secret) == expected


def test_it_hashes_the_password_in_lower_case_hex():
    assert password_md5("fleet-example-password") == "534d9d0f38a5e68aa17d36fd5edc4fa5"
    assert password_md5("password123") == "482c811da5d5b4bc6d497ffa98491e38"


def test_it_reads_credentials_from_the_environment_or_a_file_never_the_database(monkeypatch, tmp_path):
    monkeypatch.setenv("JIMI_NBO_APP_KEY", "K")
    monkeypatch.setenv("JIMI_NBO_APP_SECRET", "S")
    monkeypatch.setenv("JIMI_NBO_USER_ID", "u")
    monkeypatch.setenv("JIMI_NBO_PASSWORD", "fleet-example-password")
    expected = Credentials("K", "S", "u", "534d9d0f38a5e68aa17d36fd5edc4fa5")
    assert credentials_resolve("env:JIMI_NBO") == expected
    assert credentials_resolve("JIMI_NBO") == expected
    path = tmp_path / "creds"
    path.write_text("# comment\napp_key=K\napp_secret = S\nuser_id=u\npassword_md5=534D9D0F38A5E68AA17D36FD5EDC4FA5\n")
    assert credentials_resolve(f"file:{path}") == expected
    assert "S" not in repr(expected)
    assert "534d" not in repr(expected)


def test_it_names_what_is_missing_without_quoting_a_value(tmp_path):
    path = tmp_path / "creds"
    path.write_text("app_key=K\napp_secret=very-secret\n")
    with pytest.raises(CredentialsMissing, match="missing user_id, password") as caught:
        credentials_resolve(f"file:{path}")
    assert "very-secret" not in str(caught.value)
    with pytest.raises(CredentialsMissing, match=r"(?i)no such file"):
        credentials_resolve(f"file:{tmp_path / 'absent'}")
    with pytest.raises(CredentialsMissing, match="unknown credential reference scheme"):
        credentials_resolve("vault:x")
    with pytest.raises(CredentialsMissing, match="no credential reference"):
        credentials_resolve("")


def test_it_calls_each_account_at_its_node_unless_the_api_url_is_set(settings):
    settings.JIMI_API_URL = ""
    assert endpoint_for("eu") == "https://eu-open.tracksolidpro.com/route/rest"
    assert endpoint_for("ts") == "http://open.10000track.com/route/rest"
    settings.JIMI_API_URL = "http://127.0.0.1:8765/route/rest"
    assert endpoint_for("eu") == "http://127.0.0.1:8765/route/rest"


def _client(sandbox, **kwargs):
    credentials = Credentials(sandbox.app_key, sandbox.app_secret, sandbox.user_id, password_md5(sandbox.password))
    return JimiClient(endpoint=sandbox.url, credentials=kwargs.pop("credentials", credentials), **kwargs)


def test_it_signs_every_request_it_sends_so_the_sandbox_accepts_it(jimi_sandbox):
    with _client(jimi_sandbox) as client:
        response = client.call("jimi.user.device.list", {"target": jimi_sandbox.user_id})
    assert len(response.document["result"]) == 4
    sent = jimi_sandbox.calls("jimi.user.device.list")[0]
    assert sent["v"] == "1.0"
    assert sent["sign_method"] == "md5"
    assert sent["format"] == "json"
    assert sent["sign"] == sign(sent, jimi_sandbox.app_secret)
    assert response.params == {"target": jimi_sandbox.user_id}  # no token, key or signature kept


def test_it_reuses_one_token_per_account_across_clients(jimi_sandbox):
    for _ in range(2):
        with _client(jimi_sandbox) as client:
            client.call("jimi.user.device.location.list", {"target": jimi_sandbox.user_id})
            client.call("jimi.user.device.list", {"target": jimi_sandbox.user_id})
    assert len(jimi_sandbox.calls("jimi.oauth.token.get")) == 1
    assert len(jimi_sandbox.calls("jimi.oauth.token.refresh")) == 0


def test_it_refreshes_the_token_shortly_before_it_expires(jimi_sandbox, settings):
    jimi_sandbox.token_max_s = 3
    settings.JIMI_TOKEN_REFRESH_BEFORE_S = 2
    with _client(jimi_sandbox) as client:
        client.call("jimi.user.device.list", {"target": jimi_sandbox.user_id})
        time.sleep(1.2)  # inside the last 2 s of a 3 s token: refresh first
        client.call("jimi.user.device.list", {"target": jimi_sandbox.user_id})
    assert len(jimi_sandbox.calls("jimi.oauth.token.get")) == 1
    refresh = jimi_sandbox.calls("jimi.oauth.token.refresh")
    assert len(refresh) == 1
    assert refresh[0]["refresh_token"]


def test_it_logs_in_again_on_code_1004_and_retries_the_call_once(jimi_sandbox):
    with _client(jimi_sandbox) as client:
        client.call("jimi.user.device.list", {"target": jimi_sandbox.user_id})
        jimi_sandbox.expire_tokens()
        response = client.call("jimi.user.device.list", {"target": jimi_sandbox.user_id})
    assert response.document["code"] == 0
    assert len(jimi_sandbox.calls("jimi.oauth.token.get")) == 2


def test_it_gives_up_when_the_new_token_is_refused_too(jimi_sandbox):
    jimi_sandbox.fail_next("1004", method="jimi.user.device.list", times=2)
    with _client(jimi_sandbox) as client, pytest.raises(errors.TokenInvalid):
        client.call("jimi.user.device.list", {"target": jimi_sandbox.user_id})
    assert len(jimi_sandbox.calls("jimi.user.device.list")) == 2


@pytest.mark.parametrize("code", ["1006", "-1"])
def test_it_backs_off_and_retries_when_jimi_is_busy_or_we_call_too_often(jimi_sandbox, settings, code):
    settings.JIMI_RETRY_BACKOFF_S = 0.2
    jimi_sandbox.fail_next(code, method="jimi.user.device.list")
    started = time.monotonic()
    with _client(jimi_sandbox) as client:
        response = client.call("jimi.user.device.list", {"target": jimi_sandbox.user_id})
    assert response.document["code"] == 0
    assert time.monotonic() - started >= 0.2
    assert len(jimi_sandbox.calls("jimi.user.device.list")) == 2


def test_it_raises_too_frequent_once_the_retries_are_spent(jimi_sandbox, settings):
    settings.JIMI_RETRY_ATTEMPTS = 2
    jimi_sandbox.fail_next("1006", method="jimi.user.device.list", times=3)
    with _client(jimi_sandbox) as client, pytest.raises(errors.TooFrequent) as caught:
        client.call("jimi.user.device.list", {"target": jimi_sandbox.user_id})
    assert caught.value.code == "1006"
    assert caught.value.method == "jimi.user.device.list"
    assert len(jimi_sandbox.calls("jimi.user.device.list")) == 3


DOCUMENTED = {
    "1001": errors.ParameterError, "1002": errors.IllegalUserOrDevice, "1003": errors.RepeatedOperation,
    "1005": errors.IpLimitExceeded, "1007": errors.WrongRequestMethod, "1008": errors.AbnormalInput,
    "1100": errors.BusinessException, "1112": errors.DeviceExists, "1114": errors.FenceNameExists,
    "1207": errors.DataNotArrived, "12001": errors.AccountCreateFailed, "12002": errors.DeviceTransferFailed,
    "12003": errors.FenceCreateFailed, "12004": errors.FenceDeleteFailed, "12005": errors.CommandSendFailed,
    "213": errors.OperationResult, "252": errors.OperationResult, "41003": errors.OperationResult,
    "30010": errors.OperationResult, "99999": errors.UnknownCode,
}  # fmt: skip


@pytest.mark.parametrize(("code", "cls"), DOCUMENTED.items())
def test_it_raises_each_documented_error_code_as_its_own_exception(jimi_sandbox, code, cls):
    jimi_sandbox.fail_next(code, method="jimi.device.alarm.list", message="as the sandbox was told")
    imei = jimi_sandbox.fleet.devices[0].imei
    with _client(jimi_sandbox) as client, pytest.raises(cls) as caught:
        client.call("jimi.device.alarm.list", {"imei": imei})
    assert caught.value.code == code
    assert "as the sandbox was told" in str(caught.value)
    assert caught.value.method == "jimi.device.alarm.list"
    assert len(jimi_sandbox.calls("jimi.device.alarm.list")) == 1  # none of these is retried


def test_it_maps_busy_token_and_frequency_codes_too():
    assert isinstance(errors.error_for(-1), errors.SystemBusy)
    assert isinstance(errors.error_for("1004"), errors.TokenInvalid)
    assert isinstance(errors.error_for(1006), errors.TooFrequent)
    assert errors.error_for(" 1006 ").retry
    assert not errors.error_for(1001).retry


def test_it_answers_a_bad_signature_with_1001(jimi_sandbox):
    wrong = Credentials(jimi_sandbox.app_key, "not-the-secret", jimi_sandbox.user_id, password_md5("x"))
    with _client(jimi_sandbox, credentials=wrong) as client, pytest.raises(errors.ParameterError, match="invalid sign"):
        client.call("jimi.user.device.list", {"target": jimi_sandbox.user_id})


def test_it_reports_a_wrong_password_as_an_illegal_user(jimi_sandbox):
    wrong = Credentials(jimi_sandbox.app_key, jimi_sandbox.app_secret, jimi_sandbox.user_id, password_md5("nope"))
    with _client(jimi_sandbox, credentials=wrong) as client, pytest.raises(errors.IllegalUserOrDevice):
        client.call("jimi.user.device.list", {"target": jimi_sandbox.user_id})


def test_it_turns_timeouts_refusals_and_foreign_answers_into_transport_errors(jimi_sandbox, settings):
    jimi_sandbox.row_hook["jimi.user.device.list"] = lambda document: ["not", "an", "envelope"]
    with _client(jimi_sandbox) as client, pytest.raises(errors.TransportError, match="not the Open API envelope"):
        client.call("jimi.user.device.list", {"target": jimi_sandbox.user_id})
    url = jimi_sandbox.url
    jimi_sandbox.stop()
    TOKENS.clear()
    credentials = Credentials("k", "s", "u", "m")
    with JimiClient(endpoint=url, credentials=credentials) as client, pytest.raises(errors.TransportError):
        client.call("jimi.user.device.list", {"target": "u"})
    timeout = httpx.Client(timeout=httpx.Timeout(0.001))
    with (
        JimiClient(endpoint="http://127.0.0.1:9/route/rest", credentials=credentials, http=timeout) as client,
        pytest.raises(errors.TransportError, match=r"no answer|timed out"),
    ):
        client.call("jimi.user.device.list", {"target": "u"})
