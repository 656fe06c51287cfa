"""``vphone lab ...``: create and operate an emulated Unified CM lab folder.

This module is the command group's argument tree: every ``lab`` sub-command with its options
and help text, in the order ``vphone lab --help`` lists them. The commands themselves live by
what they act on:

* :mod:`phone.cli.lab_edge`: the clock and key source (tests replace ``lab_edge.now`` and
  ``lab_edge.key_source``), the ``DIR``/``--cluster`` arguments and the lock-load-change-save
  cycle every changing command goes through;
* :mod:`phone.cli.lab_cluster`: ``init``, ``get``, ``set``, ``set-mode``, ``ctl-update``,
  ``node``, ``log``;
* :mod:`phone.cli.lab_show`: ``show`` and the cluster report;
* :mod:`phone.cli.lab_devices`: ``add-device``, ``remove-device``, ``capf``, ``register``,
  ``unregister``;
* :mod:`phone.cli.lab_certs`: ``cert``, ``regenerate``, ``export-certs``, ``import-certs``,
  ``itl-reset``, ``itl-status``;
* :mod:`phone.cli.lab_sip`: ``trunk-profile``, ``trunk``, ``app-user``, ``sip-realm``
  (items 43-44), which add their own arguments;
* :mod:`phone.cli.serve`: ``serve``, which adds its own too.

The names other code imported from here before the split are re-exported (``__all__``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from phone.cli import lab_sip, serve
from phone.cli.lab_certs import (
    PASSWORD_ENV,
    cmd_cert,
    cmd_export,
    cmd_import,
    cmd_itl_reset,
    cmd_itl_status,
    cmd_regenerate,
)
from phone.cli.lab_cluster import (
    cmd_ctl_update,
    cmd_get,
    cmd_init,
    cmd_log,
    cmd_node,
    cmd_set,
    cmd_set_mode,
)
from phone.cli.lab_devices import (
    cmd_add_device,
    cmd_capf,
    cmd_register,
    cmd_remove_device,
    cmd_unregister,
)
from phone.cli.lab_edge import Sub, add_command, capf_trust_seed, key_source, lab_arguments, now
from phone.cli.lab_show import cluster_report, cmd_show
from phone.cli.lab_sip import (
    APP_PASSWORD_ENV,
    REALM_PASSWORD_ENV,
    cmd_app_user_add,
    cmd_app_user_remove,
    cmd_sip_realm_add,
    cmd_sip_realm_remove,
    cmd_trunk_add,
    cmd_trunk_profile_add,
    cmd_trunk_profile_remove,
    cmd_trunk_remove,
    sip_report,
)
from phone.cli.paths import output_file
from phone.cluster import capf
from phone.cluster.profiles import DEFAULT_PROFILE, PROFILES, get_profile
from phone.cluster.records import PARAMETERS, SecurityMode
from phone.errors import LabError
from phone.pki import NODE_KEY_SIZES

__all__ = [
    "APP_PASSWORD_ENV",
    "PASSWORD_ENV",
    "REALM_PASSWORD_ENV",
    "Sub",
    "capf_trust_seed",
    "cluster_report",
    "cmd_add_device",
    "cmd_app_user_add",
    "cmd_app_user_remove",
    "cmd_capf",
    "cmd_cert",
    "cmd_ctl_update",
    "cmd_export",
    "cmd_get",
    "cmd_import",
    "cmd_init",
    "cmd_itl_reset",
    "cmd_itl_status",
    "cmd_log",
    "cmd_node",
    "cmd_regenerate",
    "cmd_register",
    "cmd_remove_device",
    "cmd_set",
    "cmd_set_mode",
    "cmd_show",
    "cmd_sip_realm_add",
    "cmd_sip_realm_remove",
    "cmd_trunk_add",
    "cmd_trunk_profile_add",
    "cmd_trunk_profile_remove",
    "cmd_trunk_remove",
    "cmd_unregister",
    "key_source",
    "now",
    "register",
    "sip_report",
]


def _release(text: str) -> str:
    """``--release``: a release profile's name, from any spelling :func:`get_profile` knows."""
    try:
        return get_profile(text).name
    except LabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: Sub) -> None:
    """Add the ``lab`` command group."""
    lab = sub.add_parser(
        "lab",
        help="an emulated Unified CM lab: clusters that build, sign and serve phone files",
        description="Create and operate an emulated Unified CM lab folder (docs/cluster.md).",
    )
    commands = lab.add_subparsers(dest="lab_command", metavar="COMMAND")
    commands.required = True

    p = add_command(commands, "init", cmd_init, "create a lab folder, or add a cluster to one")
    lab_arguments(p)
    p.add_argument(
        "--release",
        "--version",  # the old name, kept for scripts (deprecated: docs/cli.md)
        dest="version",
        default=DEFAULT_PROFILE,
        type=_release,
        metavar="RELEASE",
        help=f"Unified CM release: {', '.join(PROFILES)} or 11.5, 12.5, 14, 15 "
        f"(default {DEFAULT_PROFILE}; --version is the deprecated spelling)",
    )
    p.add_argument("--tvs-nodes", type=int, default=1, metavar="N", help="Unified CM nodes")
    p.add_argument(
        "--tftp-nodes", type=int, default=1, metavar="M", help="how many of them run TFTP"
    )
    p.add_argument("--mixed-mode", action="store_true", help="start in mixed mode (tokenless CTL)")
    p.add_argument("--key-size", type=int, default=2048, choices=NODE_KEY_SIZES)
    p.add_argument(
        "--itlrecovery-years", type=int, default=5, choices=(5, 10, 15, 20), metavar="YEARS"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = add_command(commands, "show", cmd_show, "nodes, certificates, parameters, ITL/CTL, devices")
    lab_arguments(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--html",
        type=Path,
        metavar="OUT",
        help="also write a diagram of the lab (nodes, which certificate signs which file) "
        "as a self-contained HTML page",
    )

    p = add_command(commands, "get", cmd_get, "the exact bytes a TFTP node serves for a file name")
    lab_arguments(p)
    p.add_argument("filename", metavar="FILENAME")
    p.add_argument("--node", metavar="HOST", help="TFTP node (default: the first running one)")
    p.add_argument("--model", metavar="MODEL", help="the requesting phone's model")
    p.add_argument("-o", "--output", type=output_file, metavar="OUT", help="write here, not stdout")

    p = add_command(commands, "set", cmd_set, "set an enterprise or service parameter")
    lab_arguments(p)
    p.add_argument("param", metavar="PARAM", choices=list(PARAMETERS), help=", ".join(PARAMETERS))
    p.add_argument("value", metavar="VALUE")

    p = add_command(
        commands, "set-mode", cmd_set_mode, "cluster security mode (mixed builds the CTL)"
    )
    lab_arguments(p)
    p.add_argument("mode", choices=("mixed", "non-secure"))

    p = add_command(
        commands, "ctl-update", cmd_ctl_update, "rebuild the CTL (utils ctl update CTLFile)"
    )
    lab_arguments(p)

    p = add_command(commands, "add-device", cmd_add_device, "add a phone (SEP<MAC>.cnf.xml)")
    lab_arguments(p)
    p.add_argument("mac", metavar="MAC")
    p.add_argument("--model", default="8841")
    p.add_argument(
        "--security-mode",
        default="non-secure",
        choices=[m.label for m in SecurityMode],
    )
    p.add_argument("--digest-user", metavar="U")
    p.add_argument("--digest-password", metavar="P")
    p.add_argument(
        "--exclude-digest-credentials",
        action="store_true",
        help="keep the digest password out of the config (item 42)",
    )
    p.add_argument(
        "--digest-auth",
        action="store_true",
        help="security profile enables digest authentication: REGISTER is challenged (item 40)",
    )
    p.add_argument("--load", default="", metavar="LOAD", help="loadInformation (firmware load)")
    p.add_argument("--encrypt-config", action="store_true", help="serve .cnf.xml.enc.sgn")
    p.add_argument(
        "--certificate", metavar="PEM", help="the phone's LSC/MIC (encrypted configs use it)"
    )
    p.add_argument("--replace", action="store_true", help="overwrite an existing device")

    p = add_command(commands, "remove-device", cmd_remove_device, "delete a phone")
    lab_arguments(p)
    p.add_argument("mac", metavar="MAC")

    p = add_command(commands, "capf", cmd_capf, "set a CAPF certificate operation (docs/capf.md)")
    lab_arguments(p)
    p.add_argument("--mac", required=True, metavar="MAC", help="the device")
    p.add_argument(
        "--operation",
        required=True,
        choices=[*(o.value for o in capf.CapfOperation), "none"],
        help="what CAPF does at the phone's next boot (none cancels)",
    )
    p.add_argument("--auth", metavar="MODE", help="null, string:SECRET (4-10 digits), mic or lsc")
    p.add_argument(
        "--key-type",
        default="rsa-2048",
        choices=[k.value for k in capf.CapfKeyType],
        help="the LSC key (EC needs an ITL with signer version 1.1)",
    )

    p = add_command(commands, "cert", cmd_cert, "print a certificate of the lab as PEM")
    lab_arguments(p)
    p.add_argument("cert", metavar="CERT", help="callmanager, tvs, itlrecovery, capf or tomcat")
    p.add_argument("--node", metavar="HOST", help="node (per-node certificates)")
    p.add_argument("-o", "--output", type=output_file, metavar="FILE", help="write to FILE")

    p = add_command(commands, "regenerate", cmd_regenerate, "regenerate a certificate and its key")
    lab_arguments(p)
    p.add_argument("cert", metavar="CERT", help="callmanager, tvs, itlrecovery, capf or tomcat")
    p.add_argument("--node", metavar="HOST", help="node (per-node certificates)")
    p.add_argument("--yes", action="store_true", help="proceed after the ITLRecovery warning")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = add_command(commands, "export-certs", cmd_export, "Bulk Certificate Management: export")
    lab_arguments(p)
    p.set_defaults(cluster=None)
    p._option_string_actions["--cluster"].help = "the cluster (default: every cluster of the lab)"
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--to", type=Path, required=True, metavar="FOLDER", help="shared export folder")
    p.add_argument("--password", help=f"PKCS#12 password (or ${PASSWORD_ENV})")

    p = add_command(commands, "import-certs", cmd_import, "Bulk Certificate Management: import")
    lab_arguments(p)
    p.add_argument(
        "--from",
        dest="source",
        type=Path,
        required=True,
        metavar="FOLDER",
        help="the shared export folder",
    )
    p.add_argument("--password", help=f"PKCS#12 password (or ${PASSWORD_ENV})")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = add_command(
        commands, "itl-reset", cmd_itl_reset, "utils itl reset localkey|remotekey (item 29)"
    )
    lab_arguments(p)
    p.add_argument("mode", choices=("localkey", "remotekey"))
    p.add_argument("--pkcs12", metavar="FILE", help="remotekey: PKCS#12 with the key and cert")
    p.add_argument("--password", help=f"PKCS#12 password (or ${PASSWORD_ENV})")

    p = add_command(commands, "itl-status", cmd_itl_status, "ITL File Status report (item 30)")
    lab_arguments(p)
    p.add_argument("--json", action="store_true")

    p = add_command(
        commands, "register", cmd_register, "a phone registers (and reports its ITL hash)"
    )
    lab_arguments(p)
    p.add_argument("mac", metavar="MAC")
    p.add_argument("--itl-hash", metavar="SHA1", help="hash of the ITL the phone holds")
    p.add_argument("--tftp-host", metavar="HOST", help="where that ITL came from")
    p.add_argument("--model", metavar="MODEL")

    p = add_command(commands, "unregister", cmd_unregister, "a phone unregisters")
    lab_arguments(p)
    p.add_argument("mac", metavar="MAC")

    p = add_command(commands, "node", cmd_node, "power a node off or on")
    p.add_argument("action", choices=("stop", "start", "restart"))
    lab_arguments(p)
    p.add_argument("host", metavar="HOST")

    p = add_command(commands, "log", cmd_log, "the service log (TFTP, CallManager, CLI)")
    lab_arguments(p)
    p.add_argument("--tail", type=int, default=0, metavar="N")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    lab_sip.add_parsers(commands)  # `lab trunk-profile|trunk|app-user|sip-realm` (items 43-44)
    serve.add_parser(commands)  # `lab serve` (issue 5): phone/cli/serve.py
