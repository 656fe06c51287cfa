"""The model table: 41 Cisco phone models, each row with its sources and its guesses [G].

This module is data and is longer than the usual 600-line bound on purpose: one table that a
person can read top to bottom and check against the sources listed at its top (issue 14: "one
catalogue, as data"). Rows are built from a family template (the facts a family shares, with
their sources) and the model's own facts; a field named in ``guesses`` is a [G]: no source says
it for this model, and docs/models.md says what would confirm it.

Sources are cited by id (``SOURCES``): Cn are the research notes of issue 14, Sn and "item n"
are /work/shared/spec/phone-behaviour.md's sources and items.

Load names are Cisco's as the sources write them, except where a row says otherwise. The
image-signing keys a load is signed with and knows are emulated (docs/firmware.md); which loads
need an intermediate load is sourced (``key_rollover``).
"""

from __future__ import annotations

from dataclasses import dataclass

from phone.catalog.rows import FIELDS, ImageFormat, Model, StatusKey, Transport

__all__ = ["LOAD_ROWS", "ROWS", "SOURCES", "LoadRow"]

SOURCES: dict[str, str] = {
    "C1": "Cisco Unified CM Security Guide 12.5(1)SU6, Default Security, Autoregistration "
    "(spec S3; /work/shared/seed/default-security.txt)",
    "C2": "Cisco Community doc 3108501, Migrating IP Phones Between Clusters with CUCM 8 and ITL "
    "Files, https://community.cisco.com/t5/collaboration-voice-and-video/"
    "migrating-ip-phones-between-clusters-with-cucm-8-and-itl-files/ta-p/3108501",
    "C4": "crimsonsilo, Auth Fail on New Cisco IP Phones (2010), "
    "http://blog.crimsonsilo.com/2010/01/auth-fail-on-new-cisco-ip-phones/",
    "C5": "Cisco Community, How to fix Auth Fail error problem on 7900 series phones, "
    "https://community.cisco.com/t5/ip-telephony-and-phones/"
    "how-to-fix-auth-fail-error-problem-on-7900-series-phones/m-p/4396265",
    "C6": "qsolved, CUCM 7.1(3) TFTP Auth Fail error, "
    "http://blog.qsolved.com/2010/01/cucm-713-tftp-auth-fail-error.html",
    "C7": "dudek.org/blog/291, Upgrading Cisco 7970 phones and avoid AUTH FAIL",
    "C8": "Cisco readme, Firmware Versions 8.11 for 7940G/7960G (SIP), "
    "https://www.cisco.com/web/software/282074288/25271/cmterm-7940-7960-sip-8.11-readme.html",
    "C9": "Cisco readme, 7940/7960 SCCP Firmware Load 8.0(10), "
    "https://www.cisco.com/web/software/282074289/23277/cmterm-7940-7960-sccp.8-0-10-readme.html",
    "C11": "Cisco CME 3.4 Supported Firmware, https://www.cisco.com/en/US/docs/voice_ip_comm/"
    "cucme/requirements/guide/cme34spc.html",
    "C12": "Cisco CME 4.0 Supported Firmware, https://cisco.com/en/US/docs/voice_ip_comm/cucme/"
    "requirements/guide/cme40spc.html",
    "C14": "Cisco IP Phone Administration Guide for CallManager 3.3, 7902G/7905G/7912G, p. 2-6",
    "C15": "Cisco IP Phone Administration Guide for CallManager 3.2, 7960/7940/7910, p. 2-5",
    "C17": "Cisco Unified IP Phone 7906G and 7911G Admin Guide, OL-10008-01, p. 2-6",
    "C18": "Cisco IP Phone Admin Guide 7961G/7941G, OL-6966-01, p. 2-8",
    "C23": "github.com/dkgroot/provision_sccp, tftpboot/firmware (real firmware file names)",
    "C25": "github.com/chan-sccp/sccp_manager issue #85, Cisco 99XX phones not registering",
    "C26": "pastebin.com/te6Lx9w9, 8945 console log",
    "C27": "usecallmanager.nz, HTTP Provisioning (third party)",
    "C28": "CUCM Firmware Restoral via SQL (CUCM 12.5 device defaults table)",
    "C30": "chan-sccp wiki, Wireless IP Phones 7921 7925 7926",
    "C34": "ccnp-v blog, Signed Configuration Files and Moving a Phone From CUCM 8 to CUCME",
    "C36": "/work/shared/samples/firmware/sip78xx.11-0-1-11.loads",
    "C37": "/work/shared/samples/firmware/term41.default.loads",
    "C38": "Cisco CTI Supported Device Matrix (SCCP/SIP columns)",
    "C41": "Cisco Community, File auth error (7940), https://community.cisco.com/t5/"
    "collaboration-voice-and-video/file-auth-error/ta-p/3128941",
    "C42": "Cisco Unified IP Phone Admin Guide for CUCM 8.5, OL-23092-01, p. 2-10",
    "C44": "Cisco TechNote 116232, Security By Default and ITL Operation and Troubleshooting",
    "C45": "/work/shared/spec/trust-file-formats.md sections 10a and 10b",
    "S13": "Cisco IP Phone 8800 Series Admin Guide, Monitoring Phone Systems (status messages)",
    "S18": "7945-7975 admin guide 9.0 (four CTL attempts)",
    "S21": "Cisco Community, 8945 authenticated fail. Reason:14",
    "S26": "Cisco Wireless IP Phone 8821 admin guide, device web page",
    "S50": "8941/8945 9.3(4) release notes (libtvs)",
}
"""Every source a row cites, by id."""

_2009 = "image-key-2009"  # the vendor's old image-signing key (emulated, item 38)
_2010 = "image-key-2010"  # the new one: 8.5(2)SR1 and later 79xx loads are signed with it


@dataclass(frozen=True, slots=True)
class LoadRow:
    """One firmware load: its name, the hardware it is for, its format and its keys."""

    name: str
    load_family: str
    image_format: ImageFormat
    signing_key_id: str  # the vendor key its image is signed with (emulated)
    known_key_ids: tuple[str, ...]  # the keys it accepts the next image with (emulated)


_WEB = (
    "security mode",
    "web access",
    "load server",
    "CTL file",
    "ITL file",
    "ITL signature",
    "CAPF server",
    "TVS",
    "TFTP servers",
)
_ERASE_79XX = (
    "Settings > Security Configuration > Trust List > ITL File / CTL File, **# unlock, Erase"
)
_ERASE_88XX = "Applications > Admin settings > Reset settings > Security settings"
_FACTORY_RESET = "factory reset only: hold # at power-up, key 123456789*0#"
_SBD_FILES = (
    "CTLSEP<MAC>.tlv",
    "CTLFile.tlv",
    "ITLSEP<MAC>.tlv",
    "ITLFile.tlv",
    "SEP<MAC>.cnf.xml[.sgn|.enc.sgn]",
    "XMLDefault.cnf.xml[.sgn]",
)
_AUTH_FAIL = ((StatusKey.IMAGE_AUTH, "Auth Fail"),)
_88XX_TEXTS = (
    (StatusKey.IMAGE_AUTH, "Auth Fail"),
    (StatusKey.BOTH_LISTS, "CTL and ITL installed"),
)


@dataclass(frozen=True, slots=True)
class _Family:
    """What the models of one family share: values, sources and guesses."""

    values: dict[str, object]
    sources: dict[str, str]
    guesses: frozenset[str]


def _family(sources: dict[str, str], guesses: str, **values: object) -> _Family:
    unknown = (set(sources) | set(guesses.split())) - set(FIELDS)
    assert not unknown, f"fields no row has: {unknown}"
    return _Family(values, sources, frozenset(guesses.split()))


_PRE_SBD_7940 = _family(
    {
        "family": "C9, C8 (7940G/7960G readmes)",
        "protocols": "C9 (SCCP), C8 (SIP)",
        "loads": "C9: P003xxyyzzww SCCP images, e.g. P00308001000 (8.0(10)); 8.1(1)/8.1(2) [C41]",
        "image_format": "C9: loads 5.0 and newer are signed; C45 section 10a",
        "key_rollover": "C41",
        "config_files": "C15",
        "statuses": "C41: 'File auth error'",
        "transports": "item 4 (older 79xx: TFTP only)",
        "security_by_default": "C1 names no model; [G] that the 7940/7960 lack SBD",
    },
    "security_by_default ctl tvs ec_itl11 tls ctl_attempts erase_path web_fields",
    family="7940/7960",
    load_family="7940_7960",
    mic_family="79xx",
    transports=(Transport.TFTP,),
    image_format=ImageFormat.LEGACY,
    # [G] the factory load's name: an SCCP 8.0(5) in Cisco's P003 pattern.
    loads=("P00308000500", "P00308010100", "P00308010200"),
    security_by_default=False,
    ctl=True,
    tvs=False,
    protocols=("SCCP", "SIP"),
    config_files=("CTLFile.tlv", "SEP<MAC>.cnf.xml[.sgn]", "XMLDefault.cnf.xml"),
    ec_itl11=False,
    tls=("1.0",),
    ctl_attempts=4,
    erase_path=_FACTORY_RESET,
    separate_itl_erase=False,
    statuses=((StatusKey.IMAGE_AUTH, "File auth error"),),
    web_fields=_WEB,
    key_rollover=(
        "8.1(2) (P00308010200) installs only over 8.1(1) (P00308010100): from an older load "
        "the phone shows 'File auth error' (C41)"
    ),
)

_PRE_SBD_790X = _family(
    {
        "loads": "C11, C12 (CME supported firmware tables)",
        "image_format": "C12: signed .sbin / .sbn; C45 section 10a",
        "protocols": "C11",
        "config_files": "C14",
        "transports": "item 4 (older phones: TFTP only)",
    },
    "family security_by_default ctl tvs ec_itl11 tls ctl_attempts erase_path statuses "
    "web_fields key_rollover",
    mic_family="79xx",
    transports=(Transport.TFTP,),
    image_format=ImageFormat.LEGACY,
    security_by_default=False,
    ctl=False,
    tvs=False,
    protocols=("SCCP",),
    config_files=("SEP<MAC>.cnf.xml", "XMLDefault.cnf.xml", "SEPDefault.cnf"),
    ec_itl11=False,
    tls=(),
    ctl_attempts=0,
    erase_path=_FACTORY_RESET,
    separate_itl_erase=False,
    statuses=_AUTH_FAIL,
    web_fields=(),
    key_rollover="",
)


def _java79(prefix: str, latest: str, *, rollover: bool = True) -> _Family:
    """A Java 79xx family: SCCP<prefix> loads, TLV-signed, with the 8.5(2) intermediate step."""
    if rollover:
        loads: tuple[str, ...] = (
            f"SCCP{prefix}.8-3-1S",  # shipped on 8.3(1): knows only the old key [C4][C6]
            f"SCCP{prefix}.8-5-2S",  # the intermediate: old-key signed, knows both [C4][C5]
            f"SCCP{prefix}.8-5-2SR1S",  # the first new-key load [C6]
            f"SCCP{prefix}.{latest}",
        )
        step = (
            f"units shipped on 8.3(1) (SCCP{prefix}.8-3-1S) show 'Auth Fail' for 8.5(2)SR1 and "
            f"later; install SCCP{prefix}.8-5-2S (not SR1) first (C4, C5, C6, C7)"
        )
    else:
        loads, step = (f"SCCP{prefix}.{latest}",), ""
    return _family(
        {
            "family": "C23 (load prefix), C5",
            "security_by_default": "C42: the phone requests the ITL after the CTL",
            "ctl": "C17, C18, C42",
            "protocols": "C7, C23 (separate SCCP and SIP loads)",
            "loads": "C23 (newest), C4 and C6 (8.5(2), 8.5(2)SR1); 8-3-1S name [G] from C4",
            "image_format": "C37, C45 section 10a",
            "key_rollover": "C4, C5, C6, C7" if rollover else "",
            "config_files": "item 2, C44, C17",
            "ctl_attempts": "item 7, S18 (9.x 7900 firmware: four attempts)",
            "erase_path": "item 46, C34",
            "statuses": "C4, C5, C7: 'Auth Fail'",
            "transports": "item 4 (older 79xx: TFTP only)",
        },
        "tvs ec_itl11 tls web_fields" + ("" if rollover else " key_rollover"),
        load_family=f"SCCP{prefix}",
        mic_family="79xx",
        transports=(Transport.TFTP,),
        image_format=ImageFormat.LEGACY,
        loads=loads,
        security_by_default=True,
        ctl=True,
        tvs=True,
        protocols=("SCCP", "SIP"),
        config_files=_SBD_FILES,
        ec_itl11=False,
        tls=("1.0",),
        ctl_attempts=4,
        erase_path=_ERASE_79XX,
        separate_itl_erase=True,
        statuses=_AUTH_FAIL,
        web_fields=_WEB,
        key_rollover=step,
    )


def _69xx(load: str) -> _Family:
    load_family = load.split(".", 1)[0]
    return _family(
        {
            "loads": "C23",
            "image_format": "C23 (.zz.sgn parts), C45 section 10a",
            "protocols": "C38",
        },
        "family security_by_default ctl tvs config_files ec_itl11 tls ctl_attempts erase_path "
        "statuses web_fields key_rollover transports",
        family="6900",
        load_family=load_family,
        mic_family="79xx",
        transports=(Transport.TFTP,),
        image_format=ImageFormat.LEGACY,
        loads=(load,),
        security_by_default=True,
        ctl=True,
        tvs=True,
        protocols=("SCCP", "SIP"),
        config_files=_SBD_FILES,
        ec_itl11=False,
        tls=("1.0",),
        ctl_attempts=4,
        erase_path=_ERASE_88XX,
        separate_itl_erase=False,
        statuses=_AUTH_FAIL,
        web_fields=_WEB,
        key_rollover="",
    )


def _sip_container(
    family: str, load_family: str, loads: tuple[str, ...], sources: dict[str, str], guesses: str
) -> _Family:
    texts = _88XX_TEXTS if family in ("8800", "8845/8865") else _AUTH_FAIL
    return _family(
        {"transports": "item 4 (HTTP 6970 first; a real 7821 lab)", **sources},
        guesses,
        family=family,
        load_family=load_family,
        mic_family="88xx",
        transports=(Transport.HTTP, Transport.TFTP),
        image_format=ImageFormat.CONTAINER,
        loads=loads,
        security_by_default=True,
        ctl=True,
        tvs=True,
        protocols=("SIP",),
        config_files=_SBD_FILES,
        ec_itl11=True,
        tls=("1.2",),
        ctl_attempts=4,
        erase_path=_ERASE_88XX,
        separate_itl_erase=False,
        statuses=texts,
        web_fields=_WEB,
        key_rollover="",
    )


_88XX_SOURCES = {
    "family": "C28, C29",
    "loads": "C28 (sip88xx.14-1-1-0001-125, shortened: the container's name field holds 23 "
    "characters, trust-file-formats.md 10b offset 56)",
    "image_format": "C45 section 10b (the real samples are 78xx)",
    "protocols": "C28",
    "erase_path": "item 46 (S13, S47): erases CTL and ITL together",
    "statuses": "item 10, item 47, S13",
    "ec_itl11": "item 4, C27 (third party, not per model)",
    "config_files": "item 2, item 5",
}
_88XX = _sip_container(
    "8800",
    "88xx",
    ("sip88xx.12-0-1", "sip88xx.14-1-1"),
    _88XX_SOURCES,
    "security_by_default ctl tvs tls ctl_attempts web_fields key_rollover",
)
_8845_65 = _sip_container(
    "8845/8865",
    "8845_65",
    ("sip8845_65.14-1-1",),
    {**_88XX_SOURCES, "loads": "C28 (sip8845_65.14-1-1-0001-125, shortened as for 88xx), C29"},
    "security_by_default ctl tvs tls ctl_attempts web_fields key_rollover",
)
_78XX = _sip_container(
    "7800",
    "78xx",
    ("sip78xx.11-0-1-11",),
    {
        "loads": "C36 (the sample's own name; 14.x names such as C28's do not fit 10b's field)",
        "image_format": "C36, C45 section 10b",
        "protocols": "C38 (SIP only)",
        "ec_itl11": "item 4, C27 (third party, not per model)",
        "config_files": "item 2, item 5",
        "erase_path": "item 46 (78xx/88xx)",
    },
    "family security_by_default ctl tvs tls ctl_attempts statuses web_fields key_rollover",
)
_8821 = _sip_container(
    "8821",
    "8821",
    ("sip8821.11-0-6SR2",),
    {
        "loads": "C28 (sip8821.11-0-6SR2-4, shortened to fit 10b's name field)",
        "protocols": "C28",
        "web_fields": "item 48, S26",
    },
    "family security_by_default ctl tvs image_format config_files ec_itl11 tls ctl_attempts "
    "erase_path statuses key_rollover transports",
)

_894X = _family(
    {
        "family": "C23",
        "security_by_default": "S50 (9.3(4) libtvs), S21 (the 8945 rejects unsigned configs)",
        "tvs": "S50",
        "protocols": "C23 (SCCP), S50 (SIP 9.3(4))",
        "loads": "C23 (SCCP894x.9-4-2SR1-2.loads with .binN.sgn parts)",
        "transports": "C26 (HTTP download error, try tftp download)",
        "erase_path": "item 46, S21 (no ITL-only erase)",
        "config_files": "C26, item 2",
        "statuses": "S21 (the 8945's log line for a config it cannot authenticate); "
        "image-auth text [G]",
    },
    "ctl image_format ec_itl11 tls ctl_attempts web_fields key_rollover",
    family="8941/8945",
    load_family="894x",
    mic_family="88xx",
    transports=(Transport.HTTP, Transport.TFTP),
    image_format=ImageFormat.LEGACY,
    loads=("SCCP894x.9-4-2SR1-2",),
    security_by_default=True,
    ctl=True,
    tvs=True,
    protocols=("SCCP", "SIP"),
    config_files=_SBD_FILES,
    ec_itl11=False,
    tls=("1.0",),
    ctl_attempts=4,
    erase_path="Settings > Reset settings > Security settings (no ITL-only erase)",
    separate_itl_erase=False,
    statuses=(
        *_AUTH_FAIL,
        (StatusKey.CONFIG_AUTH, "invalid file {file}, authenticated fail. Reason:14"),
    ),
    web_fields=_WEB,
    key_rollover="",
)


def _99xx(load: str, load_source: str) -> _Family:
    return _family(
        {"loads": load_source, "protocols": "C28", "image_format": "C28 (not a dual-load phone)"},
        "family security_by_default ctl tvs config_files ec_itl11 tls ctl_attempts erase_path "
        "statuses web_fields key_rollover transports"
        + (" loads" if load_source.startswith("[G]") else ""),
        family="8961/9951/9971",
        load_family=load.split(".", 1)[0],
        mic_family="88xx",
        transports=(Transport.TFTP,),
        image_format=ImageFormat.LEGACY,
        loads=(load,),
        security_by_default=True,
        ctl=True,
        tvs=True,
        protocols=("SIP",),
        config_files=_SBD_FILES,
        ec_itl11=False,
        tls=("1.0",),
        ctl_attempts=4,
        erase_path=_ERASE_88XX,
        separate_itl_erase=False,
        statuses=_AUTH_FAIL,
        web_fields=_WEB,
        key_rollover="",
    )


_7925G = _family(
    {
        "family": "C30 (7921/7925/7926)",
        "loads": "C30 (running CP7925G-1.4.8.4), C23",
        "image_format": "C23 (.LOADS + .SBN), C45 section 10a",
        "protocols": "C38, C30",
        "erase_path": "C30 (**# unlocks the settings menu); the trust-list entry [G]",
    },
    "security_by_default ctl tvs config_files ec_itl11 tls ctl_attempts statuses web_fields "
    "key_rollover transports",
    family="7921/7925/7926",
    load_family="CP7925G",
    mic_family="79xx",
    transports=(Transport.TFTP,),
    image_format=ImageFormat.LEGACY,
    loads=("CP7925G-1.4.8.4",),
    security_by_default=True,
    ctl=True,
    tvs=True,
    protocols=("SCCP",),
    config_files=_SBD_FILES,
    ec_itl11=False,
    tls=("1.0",),
    ctl_attempts=4,
    erase_path="Settings > Security > Trust List, **# unlock, Erase",
    separate_itl_erase=True,
    statuses=_AUTH_FAIL,
    web_fields=_WEB,
    key_rollover="",
)


def _row(name: str, template: _Family, /, **own: object) -> Model:
    """A model of ``template``'s family; ``own`` overrides values (a ``family`` name, loads)."""
    values = {**template.values, **own}
    loads = values["loads"]
    assert isinstance(loads, tuple) and loads
    return Model(
        name=name,
        factory_load=str(loads[0]),
        default_load=str(loads[-1]),
        sources=tuple(sorted(template.sources.items())),
        guesses=template.guesses,
        **values,  # type: ignore[arg-type]
    )


def _790x(model: str, load: str, source: str) -> Model:
    return _row(
        model,
        _family(
            {**_PRE_SBD_790X.sources, "loads": source},
            " ".join(sorted(_PRE_SBD_790X.guesses)),
            **_PRE_SBD_790X.values,
        ),
        family="7902/7905/7910/7912",
        load_family=load[:6] if load.startswith("CP") else "P004",
        loads=(load,),
    )


_11 = _java79("11", "9-4-2SR3-1S")
_31 = _java79("31", "9-2-1S", rollover=False)
_41 = _java79("41", "9-4-2SR3-1S")
_42 = _java79("42", "9-4-2SR3-1S")
_45 = _java79("45", "9-4-2SR4-3S")
_70 = _java79("70", "9-4-2SR3-1S")
_75 = _java79("75", "9-4-2SR4-3S")

ROWS: tuple[Model, ...] = (
    # Pre-SBD
    _790x("7902", "CP7902080001SCCP051117A", "C12"),
    _790x("7905", "CP7905080003SCCP070409A", "C23"),
    _790x("7910", "P00405000700", "C12 (signed .sbn)"),
    _790x("7912", "CP7912060000SCCP050124A", "C11"),
    _row("7940", _PRE_SBD_7940),
    _row("7960", _PRE_SBD_7940),
    # The Java 79xx generation: Security by Default, the 8.5(2) image-key step
    _row("7906", _11, family="7906/7911"),
    _row("7911", _11, family="7906/7911"),
    _row("7931", _31, family="7931"),
    _row("7941", _41, family="7941/7961"),
    _row("7961", _41, family="7941/7961"),
    _row("7942", _42, family="7942/7962"),
    _row("7962", _42, family="7942/7962"),
    _row("7945", _45, family="7945/7965"),
    _row("7965", _45, family="7945/7965"),
    _row("7970", _70, family="7970/7971"),
    _row("7971", _70, family="7970/7971"),
    _row("7975", _75, family="7975"),
    # 6900
    _row("6901", _69xx("SCCP6901.9-2-1-a")),
    _row("6911", _69xx("SCCP6911.9-2-1-a")),
    _row("6921", _69xx("SCCP69xx.9-4-1-3SR3")),
    _row("6941", _69xx("SCCP69xx.9-4-1-3SR3")),
    _row("6945", _69xx("SCCP6945.9-3-1-3")),
    _row("6961", _69xx("SCCP69xx.9-4-1-3SR3")),
    # 7800
    _row("7811", _78XX),
    _row("7821", _78XX),
    _row("7841", _78XX),
    _row("7861", _78XX),
    # 8800
    _row("8811", _88XX),
    _row("8841", _88XX),
    _row("8851", _88XX),
    _row("8861", _88XX),
    _row("8845", _8845_65),
    _row("8865", _8845_65),
    # 8941/8945
    _row("8941", _894X),
    _row("8945", _894X),
    # 8961/9951/9971
    _row("8961", _99xx("sip8961.9-4-2SR4-1", "[G] the sip9951 pattern")),
    _row("9951", _99xx("sip9951.9-4-2SR4-1", "C28")),
    _row("9971", _99xx("sip9971.9-4-2SR4-1", "[G] the sip9951 pattern")),
    # Wireless
    _row("7925G", _7925G),
    _row("8821", _8821),
)
"""Every model, in the issue's order of families."""


def _load_rows() -> tuple[LoadRow, ...]:
    """Every load of every row once, with its (emulated) signing keys.

    A load named in a ``key_rollover`` row as shipped on 8.3(1)/8.0 knows only the old key; the
    intermediate (8.5(2), 8.1(1)) is signed with the old key and knows both; later loads are
    signed with the new key. Loads of families without a rollover are signed with the new key.
    """
    out: dict[str, LoadRow] = {}
    for model in ROWS:
        for index, name in enumerate(model.loads):
            if model.key_rollover:
                signed = _2009 if index < 2 else _2010
                known = (_2009,) if index == 0 else (_2009, _2010)
            else:
                signed, known = _2010, (_2010,)
            out.setdefault(
                name, LoadRow(name, model.load_family, model.image_format, signed, known)
            )
    return tuple(out.values())


LOAD_ROWS: tuple[LoadRow, ...] = _load_rows()
"""The firmware load catalogue, derived from the rows (what a lab's TFTP serves)."""
