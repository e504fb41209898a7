"""The App private key is parsed when settings are checked: each way it can be wrong gets its own clear message,
naming the variable it came from and never quoting the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bot.settings import ConfigError, load_settings


@pytest.fixture(scope="module")
def public_pem(app_keypair: tuple[str, str]) -> str:
    return app_keypair[1]


def _key(environ: dict[str, str]) -> str:
    return load_settings(environ, env_file=None).app_private_key()


def test_a_real_key_from_text_escaped_text_or_a_file(app_keypair: tuple[str, str], tmp_path: Path) -> None:
    private = app_keypair[0]
    assert _key({"MULL_PRIVATE_KEY": private}).strip() == private.strip()
    assert _key({"MULL_PRIVATE_KEY": private.strip().replace("\n", "\\n")}).strip() == private.strip()  # .env form
    path = tmp_path / "app.pem"
    path.write_text(private)
    assert _key({"MULL_PRIVATE_KEY_PATH": str(path)}) == private


def _encrypted(app_keypair: tuple[str, str]) -> str:
    key = serialization.load_pem_private_key(app_keypair[0].encode(), None)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(b"passphrase")).decode()


def _ec_key() -> str:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


@pytest.mark.parametrize(("make", "problem"), [
    (lambda pair: "not a key at all, just text", "is not a PEM private key"),
    (lambda pair: pair[1], "holds a public key or certificate"),
    (_encrypted, "is encrypted with a passphrase"),
    (lambda pair: "\n".join(pair[0].splitlines()[:5] + pair[0].splitlines()[-1:]), "has a damaged PEM block"),
    (lambda pair: _ec_key(), "is not an RSA key"),
])
def test_a_bad_key_says_what_is_wrong_and_where_it_came_from(app_keypair: tuple[str, str], tmp_path: Path, make,
                                                             problem: str) -> None:
    text = make(app_keypair)
    path = tmp_path / "app.pem"
    path.write_text(text)
    with pytest.raises(ConfigError) as from_text:
        _key({"MULL_PRIVATE_KEY": text})
    with pytest.raises(ConfigError) as from_file:
        _key({"MULL_PRIVATE_KEY_PATH": str(path)})
    assert problem in str(from_text.value) and str(from_text.value).startswith("MULL_PRIVATE_KEY ")
    assert problem in str(from_file.value) and f"MULL_PRIVATE_KEY_PATH ({path})" in str(from_file.value)
    for line in text.splitlines():
        if len(line) > 20 and "-----" not in line:  # no byte of the key in what is printed
            assert line not in str(from_text.value) and line not in str(from_file.value)


def test_a_path_that_cannot_be_read_or_is_given_as_the_key_text(tmp_path: Path, app_keypair: tuple[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"MULL_PRIVATE_KEY_PATH=.*nope\.pem cannot be read \(No such file"):
        _key({"MULL_PRIVATE_KEY_PATH": str(tmp_path / "nope.pem")})
    with pytest.raises(ConfigError, match=r"cannot be read \(Is a directory\)"):
        _key({"MULL_PRIVATE_KEY_PATH": str(tmp_path)})
    locked = tmp_path / "locked.pem"
    locked.write_text(app_keypair[0])
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything
        pytest.skip("running as root: every file is readable")
    with pytest.raises(ConfigError, match=r"cannot be read \(Permission denied\).*readable by the user"):
        _key({"MULL_PRIVATE_KEY_PATH": str(locked)})


def test_the_key_variable_holding_a_path_points_to_the_path_variable(tmp_path: Path,
                                                                     app_keypair: tuple[str, str]) -> None:
    path = tmp_path / "app.pem"
    path.write_text(app_keypair[0])
    with pytest.raises(ConfigError, match="MULL_PRIVATE_KEY holds a file path, not the key: set "
                                          "MULL_PRIVATE_KEY_PATH"):
        _key({"MULL_PRIVATE_KEY": str(path)})
    with pytest.raises(ConfigError, match="MULL_PRIVATE_KEY and MULL_PRIVATE_KEY_PATH are not set"):
        _key({})
