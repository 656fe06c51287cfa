"""``vphone tlv|sgn|image``: exit codes, the human view and the JSON contract."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import FORMATS_TIMESTAMP, KEY_PASSWORD
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import CERTUTILS_ITL, CONTAINER_LOADS, LEGACY_LOADS, sample_path

from phone.cli import main
from phone.formats import (
    ContainerImage,
    Digest,
    Signer,
    TrustList,
    build_container,
    build_encrypted,
    parse_signed,
    parse_trust_list,
)

ROLES = ["SAST", "CCM", "CCM", "APP-SERVER", "APP-SERVER"]


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """Run ``vphone argv...``; return (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, Any]:
    code, out, err = run(capsys, *argv, "--json")
    assert err == ""
    return code, json.loads(out)


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


@pytest.fixture
def itl_file(tmp_path: Path, cucm_itl: TrustList) -> Path:
    path = tmp_path / "ITLFile.tlv"
    path.write_bytes(cucm_itl.encode())
    return path


# --- tlv show --------------------------------------------------------------------------------


def test_tlv_show_sample_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = sample_path(CERTUTILS_ITL)
    code, view = run_json(capsys, "tlv", "show", path)
    assert code == 0
    data = path.read_bytes()
    header = view["header"]
    assert header["version"] == "1.2"
    assert header["digest"] == "SHA-1"
    assert header["filename"] == "ITLFile.tlv"
    assert header["signer"]["name"] == "CN=SAST,O=SAST,OU=SAST"
    assert header["signer"]["serial"] == "6ba5de3a260b069337c75b38be3c2d74"
    assert [r["role"] for r in view["records"]] == ROLES
    assert view["records"][4]["serial"] == "0203e5936f31b01349886ba217"
    assert view["records"][4]["subject"] == "C=US,O=Google Trust Services LLC,CN=GTS Root R1"
    assert view["signature"]["valid"] is True
    assert view["signature"]["record"] == 1
    assert view["file"]["md5"] == hashlib.md5(data).hexdigest()
    assert view["file"]["sha1"] == hashlib.sha1(data).hexdigest()
    assert view["file"]["length"] == len(data)


def test_tlv_show_sample_text(capsys: pytest.CaptureFixture[str]) -> None:
    path = sample_path(CERTUTILS_ITL)
    code, out, err = run(capsys, "tlv", "show", path)
    assert (code, err) == (0, "")
    data = path.read_bytes()
    assert hashlib.md5(data).hexdigest() in out
    assert hashlib.sha1(data).hexdigest() in out
    for index in range(1, 6):
        assert f"ITL Record #{index} of 5" in out
    assert "APP-SERVER (7)" in out
    assert "6ba5de3a260b069337c75b38be3c2d74" in out
    assert "CN=ISRG Root X1" in out
    trust_list = parse_trust_list(data)
    for record in trust_list.records:
        assert record.certificate_sha1 is not None
        assert record.certificate_sha1 in out
    assert "Signature valid" in out


def test_tlv_show_built_itl(capsys: pytest.CaptureFixture[str], itl_file: Path) -> None:
    code, view = run_json(capsys, "tlv", "show", itl_file)
    assert code == 0
    assert [r["role"] for r in view["records"]] == ["SAST", "CCM+TFTP", "TVS", "CAPF"]
    assert view["records"][1]["ip"] == "10.35.48.106"
    assert view["records"][1]["dns_name"] == "cucm-pub"
    assert view["header"]["timestamp"] == FORMATS_TIMESTAMP
    assert view["header"]["layout"].startswith("1,2,3{4,5,6},7{8,9{10,11}},12,14,15")
    assert view["signature"]["valid"] is True


def test_tlv_show_tampered_file_exits_0_and_reports(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cucm_itl: TrustList
) -> None:
    path = tmp_path / "tampered.tlv"
    path.write_bytes(_flip(cucm_itl.encode(), len(cucm_itl.encode()) - 1))
    code, view = run_json(capsys, "tlv", "show", path)
    assert code == 0
    assert view["signature"]["valid"] is False
    assert "does not match" in view["signature"]["reason"]
    code, out, _ = run(capsys, "tlv", "show", path)
    assert code == 0
    assert "Signature INVALID" in out
    code, out, _ = run(capsys, "tlv", "verify", path)
    assert code == 1
    assert "INVALID" in out


def test_tlv_show_without_matching_signer_is_null(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    formats_pem_dir: Path,
) -> None:
    out_path = tmp_path / "ITLFile.tlv"
    code, _, _ = run(
        capsys,
        "tlv",
        "build",
        "--signer-cert",
        formats_pem_dir / "SAST.pem",
        "--signer-key",
        formats_pem_dir / "SAST.key",
        "--record",
        f"TVS:{formats_pem_dir / 'TVS.pem'}:cucm-pub",
        "--timestamp",
        str(FORMATS_TIMESTAMP),
        "-o",
        out_path,
    )
    assert code == 0
    code, view = run_json(capsys, "tlv", "show", out_path)
    assert code == 0
    assert view["signature"]["valid"] is None
    assert view["signature"]["record"] is None
    code, out, _ = run(capsys, "tlv", "verify", out_path)
    assert code == 1
    assert "not checked" in out
    # ... but the right certificate settles it.
    code, _, _ = run(capsys, "tlv", "verify", out_path, "--cert", formats_pem_dir / "SAST.pem")
    assert code == 0


# --- tlv verify ------------------------------------------------------------------------------


def test_tlv_verify(
    capsys: pytest.CaptureFixture[str], itl_file: Path, formats_pem_dir: Path
) -> None:
    assert run(capsys, "tlv", "verify", itl_file)[0] == 0
    assert run(capsys, "tlv", "verify", itl_file, "--cert", formats_pem_dir / "SAST.pem")[0] == 0
    code, out, _ = run(capsys, "tlv", "verify", itl_file, "--cert", formats_pem_dir / "TVS.pem")
    assert code == 1
    assert "INVALID" in out
    code, view = run_json(capsys, "tlv", "verify", itl_file)
    assert code == 0
    assert view["signature"]["valid"] is True


def test_tlv_verify_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "tlv", "verify", sample_path(CERTUTILS_ITL))[0] == 0


# --- bad input and usage ---------------------------------------------------------------------


def test_unparseable_file_prints_one_line_with_the_offset(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cucm_itl: TrustList
) -> None:
    path = tmp_path / "ITLFile.tlv"
    path.write_bytes(cucm_itl.encode()[:1000])
    for action in ("show", "verify"):
        code, out, err = run(capsys, "tlv", action, path)
        assert code == 1
        assert out == ""
        assert err.count("\n") == 1
        assert err.startswith(f"vphone: {path}: at byte {cucm_itl.header.length}: ")
        assert "(expected" in err


def test_garbage_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "garbage.tlv"
    path.write_bytes(b"\xff" * 100)
    for argv in (["tlv", "show"], ["sgn", "show"], ["image", "show"], ["sgn", "strip"]):
        extra = ["-o", str(tmp_path / "out")] if argv[1] == "strip" else []
        code, _, err = run(capsys, *argv, path, *extra)
        assert code == 1
        assert err.startswith(f"vphone: {path}: at byte ")
        assert err.count("\n") == 1


def test_missing_file_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for argv in (["tlv", "show"], ["tlv", "verify"], ["sgn", "show"], ["image", "show"]):
        code, _, err = run(capsys, *argv, tmp_path / "nope.tlv")
        assert code == 2
        assert "no such file" in err


def test_argument_errors_exit_2(capsys: pytest.CaptureFixture[str], itl_file: Path) -> None:
    for argv in (
        ["tlv"],
        ["tlv", "frobnicate"],
        ["tlv", "show"],
        ["sgn", "verify", str(itl_file)],  # --cert is required
        ["tlv", "build", "-o", "x"],  # no signer, no record
    ):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
    capsys.readouterr()


# --- tlv build -------------------------------------------------------------------------------


def _build_args(pem: Path, out: Path, *extra: str | Path) -> list[str | Path]:
    return [
        "tlv",
        "build",
        "--signer-cert",
        pem / "SAST.pem",
        "--signer-key",
        pem / "SAST.key",
        "--record",
        f"SAST:{pem / 'SAST.pem'}",
        "--record",
        f"CCM+TFTP:{pem / 'CCM_TFTP.pem'}:cucm-pub:10.0.0.10",
        "--record",
        f"tvs:{pem / 'TVS.pem'}:cucm-pub",
        "--record",
        f"4:{pem / 'CAPF.pem'}",
        "--record",
        "6::mystery-host:10.0.0.6",
        "--timestamp",
        "2015-05-07T03:10:47Z",
        "-o",
        out,
        *extra,
    ]


def test_tlv_build_then_show(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    formats_pem_dir: Path,
    itl_certs: Mapping[str, x509.Certificate],
    independent_verify: Callable[[bytes, x509.Certificate], None],
) -> None:
    out = tmp_path / "ITLFile.tlv"
    code, text, err = run(capsys, *_build_args(formats_pem_dir, out))
    assert (code, err) == (0, "")
    assert f"wrote {out}" in text
    data = out.read_bytes()
    independent_verify(data, itl_certs["SAST"])
    code, view = run_json(capsys, "tlv", "show", out)
    assert code == 0
    assert [r["role"] for r in view["records"]] == ["SAST", "CCM+TFTP", "TVS", "CAPF", 6]
    assert view["records"][4]["has_certificate"] is False
    assert view["records"][4]["length"] == 5 + 3 + len("mystery-host") + 1 + 5 + 7
    assert view["records"][1]["ip"] == "10.0.0.10"
    assert view["header"]["timestamp"] == 1430968247
    assert view["header"]["filename"] == "ITLFile.tlv"  # the output's name by default
    assert view["header"]["digest"] == "SHA-1"
    assert view["header"]["length"] % 4 == 0
    assert view["signature"]["valid"] is True
    assert run(capsys, "tlv", "verify", out)[0] == 0
    code, text, _ = run(capsys, "tlv", "show", out)
    assert code == 0
    assert "Role        6 (unknown role)" in text
    assert "Role        CCM+TFTP (2)" in text
    assert "IP address  10.0.0.10" in text


def test_tlv_build_sha512_encrypted_key_and_filename(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, formats_pem_dir: Path
) -> None:
    out = tmp_path / "out.bin"
    args = _build_args(formats_pem_dir, out, "--digest", "SHA512", "--filename", "CTLFile.tlv")
    args[5] = formats_pem_dir / "SAST-encrypted.key"
    code, _, err = run(capsys, *args, "--key-password", KEY_PASSWORD.decode())
    assert (code, err) == (0, "")
    trust_list = parse_trust_list(out.read_bytes())
    assert trust_list.header.digest is Digest.SHA512
    assert trust_list.kind == "CTL"
    code, view = run_json(capsys, "tlv", "show", out)
    assert view["header"]["digest"] == "SHA-512"
    assert view["kind"] == "CTL"
    assert view["signature"]["valid"] is True


def test_tlv_build_wrong_password(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, formats_pem_dir: Path
) -> None:
    args = _build_args(formats_pem_dir, tmp_path / "x.tlv")
    key = formats_pem_dir / "SAST-encrypted.key"
    args[5] = key
    code, _, err = run(capsys, *args, "--key-password", "wrong")
    assert code == 1
    assert err.startswith(f"vphone: {key}: ")
    assert not (tmp_path / "x.tlv").exists()


def test_tlv_build_password_from_the_environment(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    formats_pem_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VPHONE_KEY_PASSWORD", KEY_PASSWORD.decode())
    args = _build_args(formats_pem_dir, tmp_path / "x.tlv")
    args[5] = formats_pem_dir / "SAST-encrypted.key"
    assert run(capsys, *args)[0] == 0


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("PHONE:{pem}/SAST.pem", "unknown role"),
        ("SAST", "ROLE:CERT.pem"),
        ("TVS::", "needs a DNS name or an IP"),
        ("TVS::host:999.1.1.1", "not an IPv4 address"),
        ("70000::host", "16 bits"),
        ("SAST:{pem}/missing.pem", "no such file"),
    ],
)
def test_tlv_build_bad_record(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    formats_pem_dir: Path,
    record: str,
    message: str,
) -> None:
    args = _build_args(formats_pem_dir, tmp_path / "x.tlv")
    args[7] = record.format(pem=formats_pem_dir)
    code, _, err = run(capsys, *args)
    assert code == 2
    assert message in err


def test_tlv_build_key_of_another_certificate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, formats_pem_dir: Path
) -> None:
    args = _build_args(formats_pem_dir, tmp_path / "x.tlv")
    args[5] = formats_pem_dir / "TVS.key"
    code, _, err = run(capsys, *args)
    assert code == 2
    assert "does not belong to" in err


def test_tlv_build_not_a_pem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, formats_pem_dir: Path
) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("hello")
    args = _build_args(formats_pem_dir, tmp_path / "x.tlv")
    args[3] = bogus
    code, _, err = run(capsys, *args)
    assert code == 1
    assert err.startswith(f"vphone: {bogus}: at byte 0: ")


def test_tlv_build_bad_timestamp(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, formats_pem_dir: Path
) -> None:
    args = _build_args(formats_pem_dir, tmp_path / "x.tlv")
    for bad in ("yesterday", "4294967296"):
        args[-3] = bad
        code, _, err = run(capsys, *args)
        assert code == 2
        assert "--timestamp" in err


def test_tlv_build_default_timestamp_is_now(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, formats_pem_dir: Path
) -> None:
    out = tmp_path / "x.tlv"
    args = _build_args(formats_pem_dir, out)
    del args[-4:-2]  # drop --timestamp
    before = int(time.time())
    assert run(capsys, *args)[0] == 0
    timestamp = parse_trust_list(out.read_bytes()).header.timestamp
    assert timestamp is not None
    assert before <= timestamp <= int(time.time())


# --- sgn -------------------------------------------------------------------------------------


def _sign(
    capsys: pytest.CaptureFixture[str], pem: Path, source: Path, out: Path, *extra: str
) -> int:
    return run(
        capsys,
        "sgn",
        "sign",
        source,
        "--signer-cert",
        pem / "CCM_TFTP.pem",
        "--signer-key",
        pem / "CCM_TFTP.key",
        "--timestamp",
        str(FORMATS_TIMESTAMP),
        "-o",
        out,
        *extra,
    )[0]


def test_sgn_sign_show_verify_strip(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, formats_pem_dir: Path
) -> None:
    source = tmp_path / "SEP001122334455.cnf.xml"
    source.write_bytes(b"<device><fullConfig>true</fullConfig></device>\n")
    out = tmp_path / "SEP001122334455.cnf.xml.sgn"
    assert _sign(capsys, formats_pem_dir, source, out) == 0
    signed = parse_signed(out.read_bytes())
    assert signed.header.filename == out.name
    assert signed.header.version_text == "1.0"

    code, view = run_json(capsys, "sgn", "show", out)
    assert code == 0
    assert view["header"]["version"] == "1.0"
    assert view["header"]["digest"] == "SHA-1"
    assert view["header"]["filename"] == out.name
    assert view["header"]["signer"]["name"].startswith("CN=cucm-pub;OU=VTG")
    assert view["signature"]["valid"] is None
    assert view["payload"]["length"] == source.stat().st_size

    cert = formats_pem_dir / "CCM_TFTP.pem"
    code, view = run_json(capsys, "sgn", "show", out, "--cert", cert)
    assert view["signature"]["valid"] is True
    code, text, _ = run(capsys, "sgn", "show", out)
    assert code == 0
    assert "Signature not checked" in text
    assert hashlib.sha1(out.read_bytes()).hexdigest() in text

    assert run(capsys, "sgn", "verify", out, "--cert", cert)[0] == 0
    code, text, _ = run(capsys, "sgn", "verify", out, "--cert", formats_pem_dir / "TVS.pem")
    assert code == 1
    assert "INVALID" in text

    tampered = tmp_path / "tampered.sgn"
    tampered.write_bytes(_flip(out.read_bytes(), len(out.read_bytes()) - 2))
    assert run(capsys, "sgn", "verify", tampered, "--cert", cert)[0] == 1
    assert run(capsys, "sgn", "show", tampered, "--cert", cert)[0] == 0

    stripped = tmp_path / "stripped.xml"
    assert run(capsys, "sgn", "strip", out, "-o", stripped)[0] == 0
    assert stripped.read_bytes() == source.read_bytes()


def test_sgn_sign_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, formats_pem_dir: Path
) -> None:
    source = tmp_path / "g3-tones.xml"
    source.write_bytes(b"<tones/>")
    out = tmp_path / "out.sgn"
    extra = ("--filename", "New_Zealand/g3-tones.xml.sgn", "--digest", "sha512")
    assert _sign(capsys, formats_pem_dir, source, out, *extra) == 0
    header = parse_signed(out.read_bytes()).header
    assert header.filename == "New_Zealand/g3-tones.xml.sgn"
    assert header.digest is Digest.SHA512
    cert = formats_pem_dir / "CCM_TFTP.pem"
    assert run(capsys, "sgn", "verify", out, "--cert", cert)[0] == 0


def test_sgn_show_on_enc_sgn(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    rsa_signer: Signer,
    formats_pem_dir: Path,
    phone_key: rsa.RSAPrivateKey,
) -> None:
    signed = build_encrypted(
        b"<device/>",
        rsa_signer,
        phone_key.public_key(),
        filename="SEP001122334455.cnf.xml.enc.sgn",
        timestamp=FORMATS_TIMESTAMP,
        aes_key=bytes(16),
        iv=bytes(16),
    )
    path = tmp_path / "SEP001122334455.cnf.xml.enc.sgn"
    path.write_bytes(signed.encode())
    code, view = run_json(capsys, "sgn", "show", path, "--cert", formats_pem_dir / "SAST.pem")
    assert code == 0
    assert view["encrypted"] is True
    assert view["header"]["version"] == "2.0"
    assert view["header"]["encryption"]["key_bits"] == 2048
    assert view["signature"]["valid"] is True
    code, text, _ = run(capsys, "sgn", "show", path)
    assert "AES-128-CBC" in text
    code, text, _ = run(capsys, "sgn", "strip", path, "-o", tmp_path / "x")
    assert code == 0
    assert "still encrypted" in text


# --- image -----------------------------------------------------------------------------------


def test_image_show_container_sample(capsys: pytest.CaptureFixture[str]) -> None:
    path = sample_path(CONTAINER_LOADS)
    code, view = run_json(capsys, "image", "show", path)
    assert code == 0
    assert view["family"] == "container"
    assert view["name"] == "sip78xx.11-0-1-11.loads"
    assert view["hash"]["ok"] is True
    assert view["signature"]["valid"] is None
    code, text, _ = run(capsys, "image", "show", path)
    assert code == 0
    assert "Hash check       ok" in text


def test_image_show_legacy_sample(capsys: pytest.CaptureFixture[str]) -> None:
    path = sample_path(LEGACY_LOADS)
    code, view = run_json(capsys, "image", "show", path)
    assert code == 0
    assert view["family"] == "legacy"
    assert view["header"]["version"] == "1.1"
    assert view["header"]["timestamp"] is None
    assert view["header"]["filename"] == "term41.default.loads"
    assert view["signature"]["valid"] is None
    code, text, _ = run(capsys, "image", "show", path)
    assert "Timestamp" in text and "term41.default.loads" in text


def test_image_show_built_container(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    rsa_signer: Signer,
    formats_pem_dir: Path,
) -> None:
    image: ContainerImage = build_container(b"kernel" * 100, "kern.sbn", rsa_signer.key)
    good = tmp_path / "kern.sbn"
    good.write_bytes(image.encode())
    cert = formats_pem_dir / "SAST.pem"
    code, view = run_json(capsys, "image", "show", good, "--cert", cert)
    assert (code, view["hash"]["ok"], view["signature"]["valid"]) == (0, True, True)
    bad = tmp_path / "bad.sbn"
    bad.write_bytes(_flip(image.encode(), 400))
    code, view = run_json(capsys, "image", "show", bad, "--cert", cert)
    assert (code, view["hash"]["ok"], view["signature"]["valid"]) == (0, False, False)
    assert "Checksum Error" in view["signature"]["reason"]
    code, text, _ = run(capsys, "image", "show", bad)
    assert code == 0
    assert "MISMATCH" in text


# --- the installed console script ------------------------------------------------------------


def test_console_script(tmp_path: Path, cucm_itl: TrustList) -> None:
    exe = shutil.which("vphone")
    if exe is None:
        pytest.skip("the vphone console script is not installed on PATH")
    path = tmp_path / "ITLFile.tlv"
    path.write_bytes(cucm_itl.encode())
    done = subprocess.run(
        [exe, "tlv", "show", "--json", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["signature"]["valid"] is True
    path.write_bytes(cucm_itl.encode()[:600])
    done = subprocess.run(
        [exe, "tlv", "verify", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"vphone: {path}: at byte ")


# --- the CLI on damaged files ----------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-fuzz") / "input.bin"


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    data=st.data(),
    command=st.sampled_from(
        [("tlv", "show"), ("tlv", "show", "--json"), ("sgn", "show"), ("image", "show")]
    ),
)
def test_show_on_damaged_files_exits_0_or_prints_one_line(
    scratch: Path, cucm_itl: TrustList, data: st.DataObject, command: tuple[str, ...]
) -> None:
    original = cucm_itl.encode()
    at = data.draw(st.integers(min_value=0, max_value=len(original) - 1), label="at")
    size = data.draw(st.integers(min_value=0, max_value=len(original)), label="size")
    value = data.draw(st.integers(min_value=0, max_value=255), label="value")
    damaged = bytearray(original[:size] if size < len(original) // 2 else original)
    if at < len(damaged):
        damaged[at] = value
    scratch.write_bytes(bytes(damaged))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*command[:2], str(scratch), *command[2:]])
    if code == 0:
        assert err.getvalue() == ""
        assert out.getvalue()
        if "--json" in command:
            assert json.loads(out.getvalue())["signature"]["valid"] in (True, False, None)
    else:
        assert code == 1
        assert out.getvalue() == ""
        assert err.getvalue().startswith(f"vphone: {scratch}: at byte ")
        assert err.getvalue().count("\n") == 1
