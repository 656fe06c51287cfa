"""The ``.enc.sgn`` rules of trust-file-formats.md section 8, byte for byte and word for word.

The encryption block's fixed bytes (tags 18, 22 and 24), the pad count's range and the exact
texts a person reads when an encrypted config cannot be opened (they end up in the phone's
trace as the reason of "item 14").
"""

from __future__ import annotations

import hashlib

import pytest
from conftest import FORMATS_TIMESTAMP
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from phone.errors import DecryptionError, StructureError
from phone.formats import SignedFile, Signer, build_encrypted, build_signed, decrypt, parse_signed

AES_KEY = bytes(range(0x40, 0x50))
IV = bytes(range(0x60, 0x70))
CONFIG = b"<device><fullConfig>true</fullConfig></device>"  # 46 bytes: 2 pad bytes


def _enc(
    plaintext: bytes, signer: Signer, recipient: rsa.RSAPublicKey, *, name: str = "a.enc.sgn"
) -> SignedFile:
    return build_encrypted(
        plaintext,
        signer,
        recipient,
        filename=name,
        timestamp=FORMATS_TIMESTAMP,
        aes_key=AES_KEY,
        iv=IV,
    )


def _swap(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1
    return data.replace(old, new)


# --- the encryption block, section 8 ----------------------------------------------------------


def test_section8_encryption_block_bytes(rsa_signer: Signer, phone_key: rsa.RSAPrivateKey) -> None:
    signed = _enc(CONFIG, rsa_signer, phone_key.public_key())
    info = signed.header.encryption
    assert info is not None
    wrapped = info.encrypted_key
    assert len(wrapped) == 256
    # trust-file-formats.md section 8 [C1]: 16{17{18,19,20},21{22,23,24,25}},26,27.
    iv_info = (
        b"\x11\x00\x1c"  # 17 IV_INFO, 4 + 19 + 5 bytes
        + b"\x12\x00\x01\x00"  # 18 unknown, 1 byte, value 0
        + b"\x13\x00\x10"  # 19 IV, 16 bytes
        + IV
        + b"\x14\x00\x02\x00\x02"  # 20 padding count u16: 46 bytes + 2 = 48
    )
    key_info = (
        b"\x15\x01\x10"  # 21 KEY_INFO, 4 + 5 + 4 + 259 = 272 bytes
        + b"\x16\x00\x01\x00"  # 22 unknown, 1 byte, value 0
        + b"\x17\x00\x02\x08\x00"  # 23 key size in bits, u16: 2048
        + b"\x18\x00\x01\x01"  # 24 key algorithm, 1 byte, value 1 (AES)
        + b"\x19\x01\x00"  # 25 the wrapped AES key, 256 bytes
        + wrapped
    )
    block = (
        b"\x10\x01\x32"  # 16 ENCRYPTION_INFO, 31 + 275 = 306 bytes
        + iv_info
        + key_info
        + b"\x1a\x00\x01\x01"  # 26 digest algorithm: 1 = SHA-1 (same codes as tag 8)
        + b"\x1b\x00\x14"  # 27 the SHA-1 of the plaintext
        + hashlib.sha1(CONFIG).digest()
    )
    data = signed.encode()
    assert data.count(block) == 1
    # The block comes right after tag 15 (timestamp, u32).
    assert data.index(block) == signed.header.offsets[15] + 3 + 4
    # The AES key is wrapped with RSA PKCS#1 v1.5 for the phone's key.
    assert phone_key.decrypt(wrapped, padding.PKCS1v15()) == AES_KEY


def test_section8_plaintext_padded_with_carriage_returns(
    rsa_signer: Signer, phone_key: rsa.RSAPrivateKey
) -> None:
    plaintext = b"x" * 17  # 15 pad bytes: the largest count
    signed = _enc(plaintext, rsa_signer, phone_key.public_key())
    info = signed.header.encryption
    assert info is not None
    assert info.padding_count == 15
    raw = Cipher(algorithms.AES(AES_KEY), modes.CBC(IV)).decryptor()
    assert raw.update(signed.payload) + raw.finalize() == plaintext + b"\r" * 15
    # The largest pad count, 15, is accepted on the way back.
    assert decrypt(parse_signed(signed.encode()), phone_key) == plaintext


def test_section8_pad_count_cannot_exceed_the_payload(
    rsa_signer: Signer, phone_key: rsa.RSAPrivateKey
) -> None:
    empty = _enc(b"", rsa_signer, phone_key.public_key())
    assert empty.payload == b""
    assert decrypt(parse_signed(empty.encode()), phone_key) == b""
    bad = _swap(empty.encode(), b"\x14\x00\x02\x00\x00", b"\x14\x00\x02\x00\x01")
    with pytest.raises(DecryptionError) as caught:
        decrypt(parse_signed(bad), phone_key)
    assert str(caught.value) == "padding count 1 is impossible"


def test_build_encrypted_refuses_other_key_and_iv_sizes(
    rsa_signer: Signer, phone_key: rsa.RSAPrivateKey
) -> None:
    # AES-128-CBC: a 16-byte key and a 16-byte IV (section 8).
    for key, iv in ((bytes(15), IV), (AES_KEY, bytes(17))):
        with pytest.raises(ValueError) as caught:
            build_encrypted(
                CONFIG,
                rsa_signer,
                phone_key.public_key(),
                filename="a.enc.sgn",
                timestamp=1,
                aes_key=key,
                iv=iv,
            )
        assert str(caught.value) == "AES-128-CBC needs a 16-byte key and a 16-byte IV"


# --- what a person reads when an .enc.sgn cannot be opened -----------------------------------


def test_decrypt_a_plain_sgn_names_the_missing_block(
    small_signer: Signer, phone_key: rsa.RSAPrivateKey
) -> None:
    plain = build_signed(CONFIG, small_signer, filename="a.cnf.xml.sgn", timestamp=1)
    with pytest.raises(StructureError) as caught:
        decrypt(plain, phone_key)
    assert caught.value.offset == 0
    assert caught.value.problem == "file has no encryption block"
    assert caught.value.expected == "an .enc.sgn header with tags 16-27"
    assert str(caught.value) == (
        "at byte 0: file has no encryption block (expected an .enc.sgn header with tags 16-27)"
    )


def test_decrypt_a_key_wrapped_for_another_key_size_says_so(
    rsa_signer: Signer, small_signer: Signer, phone_key: rsa.RSAPrivateKey
) -> None:
    # Wrapped for a 1024-bit key: the phone's 2048-bit key cannot unwrap it at all.
    signed = _enc(CONFIG, rsa_signer, small_signer.key.public_key())
    with pytest.raises(DecryptionError) as caught:
        decrypt(parse_signed(signed.encode()), phone_key)
    assert str(caught.value) == (
        "the config key is wrapped for another certificate: this phone's key cannot "
        "unwrap it to a 16-byte AES key (re-enroll the phone's LSC or fix the device's "
        "encryption key)"
    )


def test_decrypt_a_wrapped_key_that_is_not_16_bytes(
    rsa_signer: Signer, phone_key: rsa.RSAPrivateKey
) -> None:
    signed = _enc(CONFIG, rsa_signer, phone_key.public_key())
    info = signed.header.encryption
    assert info is not None
    other = phone_key.public_key().encrypt(bytes(24), padding.PKCS1v15())
    bad = _swap(signed.encode(), info.encrypted_key, other)
    with pytest.raises(DecryptionError) as caught:
        decrypt(parse_signed(bad), phone_key)
    assert str(caught.value) == (
        "the config key is wrapped for another certificate: this phone's key cannot "
        "unwrap it to a 16-byte AES key (re-enroll the phone's LSC or fix the device's "
        "encryption key)"
    )


def test_decrypt_a_key_wrapped_for_another_key_of_the_same_size_says_so(
    rsa_signer: Signer, phone_key: rsa.RSAPrivateKey
) -> None:
    # The case a real phone meets (a config encrypted for the LSC it had before re-enrolment):
    # OpenSSL 3.2+ mostly does not fail a wrong-key PKCS#1 v1.5 unwrap, it answers random bytes
    # of a random length (implicit rejection), which must read as the same "wrapped for another
    # certificate" as a refused unwrap, not as a malformed key. (A random answer of exactly 16
    # bytes, about 1 in 200, is caught by the plaintext digest instead: re-wrap until it is not.)
    other_key = rsa_signer.key.public_key()
    assert other_key.key_size == phone_key.key_size
    for _ in range(20):
        signed = _enc(CONFIG, rsa_signer, other_key)
        info = signed.header.encryption
        assert info is not None
        try:
            unwrapped = phone_key.decrypt(info.encrypted_key, padding.PKCS1v15())
        except ValueError:  # an OpenSSL without implicit rejection, or a build with it off
            break
        if len(unwrapped) != 16:
            break
    with pytest.raises(DecryptionError) as caught:
        decrypt(parse_signed(signed.encode()), phone_key)
    assert str(caught.value) == (
        "the config key is wrapped for another certificate: this phone's key cannot "
        "unwrap it to a 16-byte AES key (re-enroll the phone's LSC or fix the device's "
        "encryption key)"
    )


def test_decrypt_a_payload_of_partial_blocks(
    rsa_signer: Signer, phone_key: rsa.RSAPrivateKey
) -> None:
    signed = _enc(CONFIG, rsa_signer, phone_key.public_key())
    cut = SignedFile(signed.header, signed.payload[:-1])
    with pytest.raises(DecryptionError) as caught:
        decrypt(cut, phone_key)
    assert str(caught.value) == "encrypted payload of 47 bytes is not a whole number of blocks"


def test_decrypt_an_unknown_plaintext_digest_code(
    rsa_signer: Signer, phone_key: rsa.RSAPrivateKey
) -> None:
    signed = _enc(CONFIG, rsa_signer, phone_key.public_key())
    # Tag 26 = 9: no source describes digest code 9 (section 2: 1 = SHA-1, 3 = SHA-512).
    bad = _swap(signed.encode(), b"\x1a\x00\x01\x01", b"\x1a\x00\x01\x09")
    with pytest.raises(DecryptionError) as caught:
        decrypt(parse_signed(bad), phone_key)
    assert str(caught.value) == "unknown plaintext digest code 9"


def test_decrypt_a_plaintext_that_does_not_match_its_digest(
    rsa_signer: Signer, phone_key: rsa.RSAPrivateKey
) -> None:
    signed = _enc(CONFIG, rsa_signer, phone_key.public_key())
    digest = hashlib.sha1(CONFIG).digest()
    bad = _swap(signed.encode(), digest, bytes(20))
    with pytest.raises(DecryptionError) as caught:
        decrypt(parse_signed(bad), phone_key)
    assert str(caught.value) == (
        "decrypted config does not match its digest: wrong key or tampered"
    )
