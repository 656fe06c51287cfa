"""A picture of a lab: nodes, their certificates, and which certificate signs which file.

``vphone lab show --html FILE`` writes it. Pure: clusters in, one self-contained HTML page out
(inline SVG, no script, nothing fetched). The facts come from the cluster's own answers, the
ones the phones meet: :meth:`Cluster.itl_signer` per TFTP node, the node's CallManager key for
its configs (:meth:`Cluster.config_signer`), the CTL's signer in mixed mode, the records each
ITL holds as stored (parsed back, so a rollback ITL shows as empty), and the TVS members the
configs name (item 21). The same facts follow the picture as a table, for readers and tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from cryptography import x509

from phone.cluster.cluster import Cluster
from phone.cluster.itl import CTL_FILENAME, ITL_FILENAME
from phone.cluster.records import sha256_hex
from phone.formats.certfields import cucm_name
from phone.formats.trustlist import parse_trust_list

__all__ = ["CertBox", "ClusterPicture", "Edge", "FileBox", "lab_html", "picture"]

_WIDTH = 980
_CERT_X = 20
_CERT_WIDTH = 430
_FILE_X = 600
_FILE_WIDTH = 360
_ROW = 20
_SIGNS = "#1565c0"
_NAMES = "#8e24aa"


@dataclass(frozen=True, slots=True)
class CertBox:
    """One certificate of the cluster, drawn inside its node's box."""

    key: str  # SHA-256 of the DER: how files and records are matched to it
    kind: str  # CallManager, TVS, Tomcat, ITLRecovery, CAPF, or "ITL reset key"
    subject: str
    host: str


@dataclass(frozen=True, slots=True)
class FileBox:
    """A file the TFTP nodes serve (or a config's TVS list), with the lines shown in it."""

    key: str
    title: str
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Edge:
    """``cert`` signs ``file`` (``signs``), or a config names ``cert``'s TVS (``tvs member``)."""

    cert: str
    file: str
    kind: str  # "signs" | "tvs member"


@dataclass(frozen=True, slots=True)
class ClusterPicture:
    """What the diagram of one cluster shows."""

    name: str
    release: str
    mode: str
    nodes: tuple[tuple[str, str, tuple[str, ...], bool], ...]  # host, ip, services, running
    certs: tuple[CertBox, ...]
    files: tuple[FileBox, ...]
    edges: tuple[Edge, ...] = field(default=())


def _cn(certificate: x509.Certificate) -> str:
    return cucm_name(certificate.subject)


def _der_key(der: bytes) -> str:
    return sha256_hex(x509.load_der_x509_certificate(der))


def picture(cluster: Cluster) -> ClusterPicture:
    """The nodes, certificates, files and signing edges of one cluster."""
    certs: list[CertBox] = []
    by_key: dict[str, CertBox] = {}

    def add(kind: str, certificate: x509.Certificate, host: str) -> str:
        key = sha256_hex(certificate)
        if key not in by_key:
            box = CertBox(key, kind, _cn(certificate), host)
            by_key[key] = box
            certs.append(box)
        return key

    publisher = cluster.publisher
    for node in cluster.nodes:
        add("CallManager", node.callmanager.certificate, node.hostname)
        add("TVS", node.tvs.certificate, node.hostname)
        add("Tomcat", node.tomcat.certificate, node.hostname)
        if node is publisher:
            add("ITLRecovery", cluster.itlrecovery.certificate, node.hostname)
            add("CAPF", cluster.capf.certificate, node.hostname)

    files: list[FileBox] = []
    edges: list[Edge] = []
    members = cluster.config_context().tvs_members
    for host in cluster.tftp_hosts:
        node = cluster.node(host)
        signer = cluster.itl_signer(host)
        signer_key = add("ITL reset key", signer.certificate, host)
        data = cluster.stored_itl(host)
        if data is None:
            lines: tuple[str, ...] = ("not built (TFTP not active)",)
        else:
            records = parse_trust_list(data).records
            lines = tuple(
                f"{r.role_label}: {_record_owner(r.certificate_der, by_key)}" for r in records
            ) or ("no records",)
            problem = cluster.itl_problem(host)
            if problem is not None:
                lines += (f"NOT SERVED: {problem}",)
        files.append(FileBox(f"itl:{host}", f"{ITL_FILENAME} on {host}", lines))
        edges.append(Edge(signer_key, f"itl:{host}", "signs"))
        config_key = add("CallManager", node.callmanager.certificate, host)
        tvs_line = ", ".join(f"{h}:{p}" for h, p in members) or "none"
        files.append(
            FileBox(
                f"config:{host}",
                f"SEP<MAC>.cnf.xml.sgn on {host}",
                (
                    "device configs, signed by this node's CallManager key",
                    f"TVS members named: {tvs_line}",
                ),
            )
        )
        edges.append(Edge(config_key, f"config:{host}", "signs"))
        for member, _port in members:
            member_node = cluster.find_node(member)
            if member_node is not None:
                edges.append(
                    Edge(sha256_hex(member_node.tvs.certificate), f"config:{host}", "tvs member")
                )
    ctl = cluster.ctl_file
    if ctl is not None:
        trust_list = parse_trust_list(ctl)
        lines = tuple(
            f"{r.role_label}: {_record_owner(r.certificate_der, by_key)}"
            for r in trust_list.records
        )
        files.append(FileBox("ctl", f"{CTL_FILENAME} (every TFTP node)", lines))
        ctl_signer = _key_of_subject(trust_list.header.signer_name, certs)
        if ctl_signer is not None:
            edges.append(Edge(ctl_signer, "ctl", "signs"))
    return ClusterPicture(
        name=cluster.name,
        release=cluster.profile.name,
        mode="mixed" if cluster.mixed_mode else "non-secure",
        nodes=tuple((n.hostname, n.ip, n.services, n.running) for n in cluster.nodes),
        certs=tuple(certs),
        files=tuple(files),
        edges=tuple(edges),
    )


def _record_owner(der: bytes | None, by_key: dict[str, CertBox]) -> str:
    if der is None:
        return "no certificate"
    box = by_key.get(_der_key(der))
    return f"{box.host} {box.kind}" if box is not None else "a certificate from outside the lab"


def _key_of_subject(signer_name: str, certs: Sequence[CertBox]) -> str | None:
    """The certificate whose subject a trust list's header names (both in CUCM's ``;``-separated
    form; the parts are compared, not the text, so their order does not matter)."""

    def parts(name: str) -> list[str]:
        return sorted(part.strip() for part in name.replace(";", ",").split(","))

    wanted = parts(signer_name)
    for box in certs:
        if parts(box.subject) == wanted:
            return box.key
    return None


# --- drawing -------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _svg(p: ClusterPicture) -> str:
    out: list[str] = []
    anchors: dict[str, float] = {}  # cert key -> y of its row's middle
    y = 20.0
    for host, ip, services, running in p.nodes:
        mine = [c for c in p.certs if c.host == host]
        height = _ROW * (len(mine) + 1) + 10
        state = "" if running else " (STOPPED)"
        out.append(
            f'<g class="node" data-host="{_e(host)}"><rect x="{_CERT_X}" y="{y}" '
            f'width="{_CERT_WIDTH}" height="{height}" rx="6" fill="#f5f5f5" stroke="#9e9e9e"/>'
            f'<text x="{_CERT_X + 8}" y="{y + 15}" font-weight="600">{_e(host)} {_e(ip)}'
            f"{_e(state)}</text>"
            f'<text x="{_CERT_X + _CERT_WIDTH - 8}" y="{y + 15}" text-anchor="end" '
            f'fill="#616161">{_e(" ".join(services))}</text>'
        )
        for row, cert in enumerate(mine, start=1):
            top = y + row * _ROW + 4
            anchors[cert.key] = top + (_ROW - 4) / 2
            out.append(
                f'<rect class="cert" data-kind="{_e(cert.kind)}" x="{_CERT_X + 8}" y="{top}" '
                f'width="{_CERT_WIDTH - 16}" height="{_ROW - 4}" rx="3" fill="#fff" '
                f'stroke="#bdbdbd"><title>{_e(cert.subject)}</title></rect>'
                f'<text x="{_CERT_X + 14}" y="{top + 12}"><tspan font-weight="600">'
                f"{_e(cert.kind)}</tspan> {_e(_short(cert.subject, 44))}</text>"
            )
        out.append("</g>")
        y += height + 12
    left_bottom = y
    y = 20.0
    targets: dict[str, float] = {}
    for box in p.files:
        height = _ROW * (len(box.lines) + 1) + 6
        targets[box.key] = y + 12
        lines = "".join(
            f'<text x="{_FILE_X + 8}" y="{y + 15 + _ROW * i}" font-size="11">'
            f"{_e(_short(line, 50))}<title>{_e(line)}</title></text>"
            for i, line in enumerate(box.lines, start=1)
        )
        out.append(
            f'<g class="file" data-file="{_e(box.key)}"><rect x="{_FILE_X}" y="{y}" '
            f'width="{_FILE_WIDTH}" height="{height}" rx="6" fill="#e3f2fd" stroke="#1565c0"/>'
            f'<text x="{_FILE_X + 8}" y="{y + 15}" font-weight="600">{_e(box.title)}</text>'
            f"{lines}</g>"
        )
        y += height + 12
    total = max(left_bottom, y) + 10
    x1 = _CERT_X + _CERT_WIDTH
    x2 = _FILE_X
    for edge in p.edges:
        if edge.cert not in anchors or edge.file not in targets:
            continue
        y1, y2 = anchors[edge.cert], targets[edge.file]
        signs = edge.kind == "signs"
        colour = _SIGNS if signs else _NAMES
        dash = "" if signs else ' stroke-dasharray="5,4"'
        out.append(
            f'<path class="edge" data-kind="{_e(edge.kind)}" d="M{x1},{y1:.1f} '
            f'C{x1 + 70},{y1:.1f} {x2 - 70},{y2:.1f} {x2 - 2},{y2:.1f}" fill="none" '
            f'stroke="{colour}" stroke-width="1.6"{dash} marker-end="url(#arrow-{edge.kind[0]})"/>'
        )
    defs = "".join(
        f'<marker id="arrow-{kind}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        for kind, colour in (("s", _SIGNS), ("t", _NAMES))
    )
    return (
        f'<svg class="lab" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {total:.0f}" '
        f'width="{_WIDTH}" height="{total:.0f}" role="img" '
        f'aria-label="cluster {_e(p.name)}"><defs>{defs}</defs>' + "".join(out) + "</svg>"
    )


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _table(p: ClusterPicture) -> str:
    certs = {c.key: c for c in p.certs}
    files = {f.key: f for f in p.files}
    rows = "".join(
        f"<tr><td>{_e(certs[e.cert].host)} {_e(certs[e.cert].kind)}</td><td>{_e(e.kind)}</td>"
        f"<td>{_e(files[e.file].title)}</td><td><code>{_e(certs[e.cert].subject)}</code></td></tr>"
        for e in p.edges
        if e.cert in certs and e.file in files
    )
    return (
        f'<table class="signs" data-cluster="{_e(p.name)}"><tr><th>certificate</th><th></th>'
        f"<th>file</th><th>subject</th></tr>{rows}</table>"
    )


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #212121; margin: 24px auto;
       max-width: 1000px; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
svg text { font: 12px system-ui, sans-serif; fill: #212121; }
table { border-collapse: collapse; width: 100%; margin-top: 8px; }
td, th { text-align: left; padding: 3px 8px; border-bottom: 1px solid #e0e0e0; }
th { background: #f5f5f5; } code { font-size: 11px; }
.key span { margin-right: 18px; }
"""


def lab_html(clusters: Sequence[Cluster], title: str = "vphone lab") -> str:
    """One HTML page: per cluster, its diagram and the signing table (fetches nothing)."""
    sections = []
    for cluster in clusters:
        p = picture(cluster)
        sections.append(
            f"<h2>cluster {_e(p.name)}: release {_e(p.release)}, {_e(p.mode)} mode</h2>"
            f"{_svg(p)}{_table(p)}"
        )
    key = (
        f'<p class="key"><span style="color:{_SIGNS}">&#8594; signs</span>'
        f'<span style="color:{_NAMES}">&#8674; the configs name this TVS (item 21)</span>'
        "<span>Each ITL box lists its records and whose certificate each holds.</span></p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>{key}" + "".join(sections) + "</body></html>\n"
    )
