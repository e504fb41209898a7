"""The GitHub App's private key, read and parsed once at start-up rather than at the first GitHub call.

A key that is not there, not PEM, the public half, encrypted or not RSA would otherwise surface minutes later
as a JWT error inside a job. Every message names the variable the key came from and the fix, never a byte of
the key itself.
"""

from __future__ import annotations

import functools
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

TEXT_VAR = "MULL_PRIVATE_KEY"
PATH_VAR = "MULL_PRIVATE_KEY_PATH"
_DOWNLOAD = "the .pem file from the GitHub App's settings page ('Generate a private key')"
_PUBLIC_MARKS = ("-----BEGIN PUBLIC KEY-----", "-----BEGIN RSA PUBLIC KEY-----", "ssh-rsa ", "-----BEGIN CERTIFICATE")


class AppKeyError(ValueError):
    """The key cannot sign the App's tokens; the message names the variable and says what to do."""


def read_app_key(text: str | None, path: Path | None) -> str:
    """The App's PEM from ``MULL_PRIVATE_KEY`` (``\\n`` escapes allowed, as in ``.env``) or the file at
    ``MULL_PRIVATE_KEY_PATH``, checked to be an unencrypted RSA private key."""
    if text is not None:
        pem = text.replace("\\n", "\n").strip() + "\n"
        source = TEXT_VAR
        if "-----BEGIN" not in pem and _names_a_file(pem.strip()):
            raise AppKeyError(f"{TEXT_VAR} holds a file path, not the key: set {PATH_VAR} to that path instead "
                              f"(and unset {TEXT_VAR})")
    elif path is not None:
        source = f"{PATH_VAR} ({path})"
        try:
            pem = path.read_text(errors="replace")
        except OSError as exc:
            raise AppKeyError(f"{PATH_VAR}={path} cannot be read ({exc.strerror or type(exc).__name__}): point it "
                              f"at {_DOWNLOAD}, readable by the user Mull runs as") from None
    else:
        raise AppKeyError(f"{TEXT_VAR} and {PATH_VAR} are not set: the GitHub App's private key is needed; set "
                          f"{PATH_VAR} to {_DOWNLOAD}, or {TEXT_VAR} to its text")
    check_app_key(pem, source)
    return pem


def check_app_key(pem: str, source: str) -> None:
    """Raise AppKeyError when ``pem`` cannot sign a GitHub App JWT (RS256)."""
    if any(mark in pem for mark in _PUBLIC_MARKS) and "PRIVATE KEY-----" not in pem:
        raise AppKeyError(f"{source} holds a public key or certificate, not the App's private key: use {_DOWNLOAD}")
    if "-----BEGIN" not in pem or "PRIVATE KEY-----" not in pem:
        raise AppKeyError(f"{source} is not a PEM private key (no '-----BEGIN RSA PRIVATE KEY-----' block): use "
                          f"{_DOWNLOAD}")
    try:
        is_rsa = _is_rsa_private_key(pem.encode())
    except TypeError:  # cryptography's word for "encrypted, and no password given"
        raise AppKeyError(f"{source} is encrypted with a passphrase, which Mull cannot enter: decrypt it once "
                          "(`openssl pkey -in key.pem -out app.pem`) or download a new key from the App's "
                          "settings page") from None
    except ValueError:
        raise AppKeyError(f"{source} has a damaged PEM block (cut short, or its line breaks lost): use {_DOWNLOAD} "
                          "as it is; in .env write it on one line with \\n between its lines") from None
    except Exception as exc:  # noqa: BLE001 - cryptography's parser errors are many; none may leak the key
        raise AppKeyError(f"{source} cannot be parsed as a private key ({type(exc).__name__}): use "
                          f"{_DOWNLOAD}") from None
    if not is_rsa:
        raise AppKeyError(f"{source} is not an RSA key; GitHub Apps sign with RSA: use {_DOWNLOAD}")


@functools.lru_cache(maxsize=4)
def _is_rsa_private_key(pem: bytes) -> bool:
    """Parsing checks the key's numbers, about 40 ms of CPU: done once per key and process, not at every start
    of a worker's services (``MullSettings.app_private_key`` is read by each)."""
    return isinstance(load_pem_private_key(pem, password=None), rsa.RSAPrivateKey)


def _names_a_file(value: str) -> bool:
    if "\n" in value or len(value) > 4096:
        return False
    try:
        return Path(value).expanduser().is_file()
    except OSError:
        return False
