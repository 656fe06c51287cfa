"""The ``[[cluster]]`` and ``[[group]]`` tables of a scenario, and references to them.

Steps and expectations name clusters, groups and cluster nodes; :class:`Definitions` holds the
tables parsed so far and checks those names against them, with a suggestion for a misspelt
one.
"""

from __future__ import annotations

import re

from phone.catalog.models import MODELS
from phone.cluster.profiles import PROFILES, get_profile
from phone.errors import LabError
from phone.pki import NODE_KEY_SIZES
from phone.scenario.model import ClusterDef, GroupDef
from phone.scenario.schema import SECURITY_MODES
from phone.scenario.toml_reader import Reader, suggest

__all__ = ["Definitions"]

_CLUSTER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,28}[a-z0-9])?")  # the lab's own rule
_GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_MAX_PHONES = 10_000_000
_MAX_NODES = 64


class Definitions:
    """The clusters and groups a scenario defines, in file order, and references to them."""

    def __init__(self) -> None:
        self.clusters: dict[str, ClusterDef] = {}
        self.groups: dict[str, GroupDef] = {}

    def cluster(self, r: Reader) -> ClusterDef:
        """A ``[[cluster]]`` table (not yet added to :attr:`clusters`)."""
        name = r.text("name")
        if not _CLUSTER_NAME.fullmatch(name):
            raise r.error(
                f"{name!r} is not a cluster name: 1 to 30 lower-case letters, digits and '-'",
                "name",
            )
        if name in self.clusters:
            raise r.error(f"a cluster called {name!r} is already defined", "name")
        release = r.text("release", "14.x")
        try:
            release = get_profile(release).name
        except LabError:
            raise r.error(
                f"unknown release {release!r} (known: {', '.join(PROFILES)})", "release"
            ) from None
        tvs_nodes = r.integer("tvs_nodes", 1, low=1, high=_MAX_NODES)
        tftp_nodes = r.integer("tftp_nodes", 1, low=1, high=tvs_nodes)
        mode = r.choice("mode", ("non-secure", "mixed"), "non-secure")
        key_size = r.integer("key_size", 2048, low=1024, high=4096)
        if key_size not in NODE_KEY_SIZES:  # the CLI's choices too (issue 18 item 3)
            raise r.error("key_size is 1024, 2048 or 4096", "key_size")
        r.finish()
        return ClusterDef(
            name, release, tvs_nodes, tftp_nodes, mode == "mixed", key_size, line=r.line()
        )

    def cluster_ref(self, r: Reader, key: str = "cluster", default: str | None = None) -> str:
        name = r.text(key, default)
        if name not in self.clusters:
            raise r.error(
                f"no cluster called {name!r} (clusters: {', '.join(self.clusters)})"
                + suggest(name, self.clusters),
                key,
            )
        return name

    def group(self, r: Reader, index: int) -> GroupDef:
        """The ``index``-th ``[[group]]`` table (not yet added to :attr:`groups`)."""
        name = r.text("name")
        if not _GROUP_NAME.fullmatch(name):
            raise r.error(f"{name!r} is not a group name: letters, digits, '-' and '_'", "name")
        if name in self.groups:
            raise r.error(f"a group called {name!r} is already defined", "name")
        count = r.integer("count", None, low=1, high=_MAX_PHONES)
        cluster = self.cluster_ref(r)
        model = r.text("model", "8841").upper().removeprefix("CP-")
        if model not in MODELS:
            raise r.error(f"unknown model {model!r} (known: {', '.join(sorted(MODELS))})", "model")
        protocol = r.choice("protocol", ("", "sip", "sccp"), "")
        if protocol and protocol.upper() not in MODELS[model].protocols:
            runs = ", ".join(p.lower() for p in MODELS[model].protocols)
            raise r.error(f"the {model} does not run {protocol} (it runs {runs})", "protocol")
        power = r.choice("power", ("on", "off"), "on")
        configured = r.boolean("configured", True)
        security = r.choice("security_mode", SECURITY_MODES, "non-secure")
        load = r.text("load", "")
        encrypt = r.boolean("encrypt_config", security == "encrypted")
        r.finish()
        return GroupDef(
            name=name,
            count=count,
            cluster=cluster,
            model=model,
            powered=power == "on",
            configured=configured,
            security_mode=security,
            load=load,
            encrypt_config=encrypt,
            protocol=protocol,
            index=index,
            line=r.line(),
        )

    def group_refs(self, r: Reader) -> tuple[str, ...]:
        if r.has("group") and r.has("groups"):
            raise r.error("give 'group' or 'groups', not both", "groups")
        key = "group" if r.has("group") else "groups"
        names = r.strings(key)
        if names is None:
            return tuple(self.groups)
        if not names:
            raise r.error("name at least one group", key)
        for name in names:
            if name not in self.groups:
                raise r.error(
                    f"no group called {name!r} (groups: {', '.join(self.groups)})"
                    + suggest(name, self.groups),
                    key,
                )
        return tuple(dict.fromkeys(names))

    def node(self, r: Reader, cluster: str) -> str | None:
        if not r.has("node"):
            return None
        text = r.text("node").strip().lower()
        hosts = self.clusters[cluster].hostnames()
        for host in hosts:
            if text in (host, host.split(".", 1)[0]):
                return host
        raise r.error(f"cluster {cluster} has no node {text!r} (nodes: {', '.join(hosts)})", "node")
