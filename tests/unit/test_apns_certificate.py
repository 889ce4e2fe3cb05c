"""What the APNs `.p12` upload checks, and the message each refusal gives."""

from __future__ import annotations

import base64
import datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from pushgate.credential_check import check_apns
from pushgate.emulators.credentials import ApnsPushCertificate, generate_apns_certificate
from pushgate.providers.apns_certificate import ApnsIdentity, check_identity, load_p12
from pushgate.providers.errors import CredentialError

BUNDLE = "com.example.app"
NOW = datetime.datetime.now(datetime.UTC)


def ec_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def key_pem() -> str:
    return ec_pem()  # EC keys: fast to make, and TLS takes them as well as RSA


def make(key_pem: str, **options: object) -> ApnsPushCertificate:
    return generate_apns_certificate(
        None,
        bundle_id=BUNDLE,
        private_key_pem=key_pem,
        **options,  # type: ignore[arg-type]
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_a_good_p12_loads_with_its_password_and_names_its_bundle(key_pem: str) -> None:
    certificate = make(key_pem, password="pw")

    identity = load_p12(b64(certificate.p12), "pw")
    check_identity(identity, BUNDLE)

    assert identity.bundle_id == BUNDLE
    assert identity.fingerprint == certificate.certificate.fingerprint


def test_a_wrong_password_says_so(key_pem: str) -> None:
    certificate = make(key_pem, password="right")

    with pytest.raises(CredentialError, match="password is wrong"):
        load_p12(b64(certificate.p12), "wrong")
    with pytest.raises(CredentialError, match="needs a password"):
        load_p12(b64(certificate.p12), "")


@pytest.mark.parametrize(
    ("blob", "message"),
    [("not base64!", "not base64"), ("", "empty"), (b64(b"junk" * 10), "cannot be opened")],
)
def test_what_is_not_a_p12_is_refused(blob: str, message: str) -> None:
    with pytest.raises(CredentialError, match=message):
        load_p12(blob, "")


def test_a_p12_without_its_key_is_refused(key_pem: str) -> None:
    certificate = make(key_pem)
    only_cert = pkcs12.serialize_key_and_certificates(
        b"x",
        None,
        None,
        [pkcs12.load_key_and_certificates(certificate.p12, None)[1]],  # type: ignore[list-item]
        serialization.NoEncryption(),
    )

    with pytest.raises(CredentialError, match="private key and the certificate"):
        load_p12(b64(only_cert), "")


def test_a_key_of_another_certificate_is_refused(key_pem: str) -> None:
    identity = load_p12(b64(make(key_pem).p12), "")
    other_key = serialization.load_pem_private_key(ec_pem().encode(), password=None)

    with pytest.raises(CredentialError, match="does not belong"):
        check_identity(ApnsIdentity(other_key, identity.certificate), BUNDLE)


@pytest.mark.parametrize(
    ("not_before", "not_after", "message"),
    [
        (NOW - datetime.timedelta(days=30), NOW - datetime.timedelta(days=1), "expired"),
        (NOW + datetime.timedelta(days=1), NOW + datetime.timedelta(days=30), "not valid before"),
    ],
)
def test_a_certificate_outside_its_validity_is_refused(
    key_pem: str, not_before: datetime.datetime, not_after: datetime.datetime, message: str
) -> None:
    certificate = make(key_pem, not_before=not_before, not_after=not_after)

    with pytest.raises(CredentialError, match=message):
        check_identity(load_p12(b64(certificate.p12), ""), BUNDLE)


def test_the_bundle_id_must_be_the_certificates_uid_where_it_has_one(key_pem: str) -> None:
    named = load_p12(b64(make(key_pem).p12), "")
    nameless = load_p12(b64(make(key_pem, uid=None).p12), "")

    with pytest.raises(CredentialError, match=r"for bundle id 'com\.example\.app'"):
        check_identity(named, "com.other.app")
    check_identity(nameless, "com.other.app")


def test_the_upload_answers_each_problem_with_a_message(key_pem: str) -> None:
    certificate = make(key_pem, password="pw")
    upload = certificate.as_upload()

    wrong_password = check_apns({**upload, "password": "nope"})
    wrong_bundle = check_apns({**upload, "bundle_id": "com.other.app"})
    no_bundle = check_apns({k: v for k, v in upload.items() if k != "bundle_id"})
    bad_type = check_apns({**upload, "password": 7})

    assert not wrong_password.validated and "password is wrong" in str(wrong_password.detail)
    assert not wrong_bundle.validated and "not 'com.other.app'" in str(wrong_bundle.detail)
    assert not no_bundle.validated and "'bundle_id' is required" in str(no_bundle.detail)
    assert not bad_type.validated and "'password' must be a string" in str(bad_type.detail)
