"""The SIP trunk side of ``vphone lab`` (items 43-44): ``lab trunk-profile``, ``lab trunk``,
``lab app-user`` and ``lab sip-realm``, each with ``add``/``list``/``remove``.

Their arguments (:func:`add_parsers`), their commands, and :func:`sip_report`, the SIP part of
``lab show`` that their ``list`` actions print too. Passwords come from ``--password`` or an
environment variable and are never printed: an application user's is stored as HA1 only.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from phone.cli.lab_edge import Sub, add_command, chosen_cluster, emit, lab_arguments, mutate
from phone.cluster.cluster import Cluster
from phone.cluster.store import load_lab
from phone.cluster.trunk import (
    ApplicationUser,
    RequestType,
    SipRealm,
    TrunkConfig,
    TrunkSecurityProfile,
    short_names,
)
from phone.errors import UsageError

APP_PASSWORD_ENV = "VPHONE_APP_PASSWORD"  # noqa: S105 - the variable's name, not a password
REALM_PASSWORD_ENV = "VPHONE_REALM_PASSWORD"  # noqa: S105 - the variable's name, not a password


# --- the report: lab show and the list actions -----------------------------------------------


def sip_report(cluster: Cluster) -> dict[str, Any]:
    """The SIP trunk side of ``vphone lab show`` (items 43-44), JSON-ready.

    Never a password or a digest hash: an application user shows its realm and whether that
    is still the Cluster ID (HA1 includes the realm, so changing the Cluster ID invalidates
    it); a SIP realm shows its user only.
    """
    cluster_id = cluster.parameters.cluster_id
    return {
        "trunk_profiles": [
            {
                "name": p.name,
                "allowed": short_names(p.allowed),
                "digest": p.digest,
                "application_authorization": p.application_authorization,
                "challenge": p.challenge,
                "trunks": list(cluster.trunks_using(p.name)),
            }
            for p in cluster.trunk_profiles.values()
        ],
        "trunks": [
            {"name": t.name, "addresses": sorted(t.addresses), "profile": t.profile}
            for t in cluster.trunks.values()
        ],
        "application_users": [
            {
                "name": u.name,
                "realm": u.realm,
                "credentials_valid": u.realm == cluster_id,
                "allowed": short_names(u.allowed),
            }
            for u in cluster.application_users.values()
        ],
        "sip_realms": [{"realm": r.realm, "user": r.user} for r in cluster.sip_realms.values()],
    }


def _profile_line(profile: dict[str, Any]) -> str:
    allowed = ", ".join(profile["allowed"]) or "none"
    digest = f"digest {profile['challenge']}" if profile["digest"] else "no digest"
    app = ", application-level authorization" if profile["application_authorization"] else ""
    used = f"  (trunks: {', '.join(profile['trunks'])})" if profile["trunks"] else ""
    return f"{profile['name']}  allows {allowed}; {digest}{app}{used}"


def _trunk_line(trunk: dict[str, Any]) -> str:
    return f"{trunk['name']}  {', '.join(trunk['addresses'])}  profile {trunk['profile']}"


def _user_line(user: dict[str, Any]) -> str:
    allowed = ", ".join(user["allowed"]) or "none"
    stale = (
        "" if user["credentials_valid"] else "  STALE: cluster-id changed, set the password again"
    )
    return f"{user['name']}  realm {user['realm']}  allows {allowed}{stale}"


def _realm_line(realm: dict[str, Any]) -> str:
    return f"{realm['realm']}  user {realm['user']}  (password stored, not shown)"


# Each SIP list of the report: its key, the title ``lab show`` gives it, and how it prints an entry.
SIP_SECTIONS: tuple[tuple[str, str, Callable[[dict[str, Any]], str]], ...] = (
    ("trunk_profiles", "SIP trunk security profiles", _profile_line),
    ("trunks", "SIP trunks", _trunk_line),
    ("application_users", "application users", _user_line),
    ("sip_realms", "SIP realms (the cluster as UAC)", _realm_line),
)


# --- commands --------------------------------------------------------------------------------


def _secret(args: argparse.Namespace, env: str, what: str) -> str:
    """A password from ``--password`` or the environment variable ``env``.

    Raises:
        UsageError: neither gives one.
    """
    text: str | None = args.password or os.environ.get(env)
    if not text:
        raise UsageError(f"give the {what} password with --password or ${env}")
    return text


def _list(args: argparse.Namespace, key: str, line: Callable[[dict[str, Any]], str]) -> int:
    """``lab trunk-profile|trunk|app-user|sip-realm list``: one line each, or JSON."""
    lab = load_lab(args.dir)
    cluster = chosen_cluster(lab, args)
    entries: list[dict[str, Any]] = sip_report(cluster)[key]
    if args.json:
        emit(json.dumps({"cluster": cluster.name, key: entries}, indent=2))
        return 0
    if not entries:
        emit(f"{cluster.name}: none")
    for entry in entries:
        emit(f"{cluster.name}: {line(entry)}")
    return 0


def cmd_trunk_profile_add(args: argparse.Namespace) -> int:
    """``lab trunk-profile add NAME``: CUCM's SIP Trunk Security Profile page."""
    profile = TrunkSecurityProfile(
        args.name,
        allowed=RequestType.parse_list(args.allow),
        digest=args.digest,
        application_authorization=args.app_auth,  # refused without --digest (item 44)
        challenge=args.challenge,
    )

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.add_trunk_profile(profile, now=moment, replace=args.replace)
        allowed = ", ".join(short_names(profile.allowed)) or "none"
        return f"{cluster.name}: trunk security profile {profile.name} saved (allows {allowed})"

    return mutate(args, change)


def cmd_trunk_profile_remove(args: argparse.Namespace) -> int:
    """``lab trunk-profile remove NAME``."""

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.remove_trunk_profile(args.name, now=moment)
        return f"{cluster.name}: trunk security profile {args.name} removed"

    return mutate(args, change)


def cmd_trunk_add(args: argparse.Namespace) -> int:
    """``lab trunk add NAME --address IP[/PREFIX] --profile P``."""
    trunk = TrunkConfig(args.name, frozenset(args.address), args.profile)

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.add_trunk(trunk, now=moment, replace=args.replace)
        return f"{cluster.name}: trunk {trunk.name} saved"

    return mutate(args, change)


def cmd_trunk_remove(args: argparse.Namespace) -> int:
    """``lab trunk remove NAME``."""

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.remove_trunk(args.name, now=moment)
        return f"{cluster.name}: trunk {args.name} removed"

    return mutate(args, change)


def cmd_app_user_add(args: argparse.Namespace) -> int:
    """``lab app-user add NAME``: stores HA1 for the current Cluster ID, never the password."""
    password = _secret(args, APP_PASSWORD_ENV, "application user")
    allowed = RequestType.parse_list(args.allow)

    def change(cluster: Cluster, moment: datetime) -> str:
        # Item 43: trunk challenges use realm = Cluster ID, so HA1 is computed for it.
        realm = cluster.parameters.cluster_id
        user = ApplicationUser.create(args.name, password, realm=realm, allowed=allowed)
        cluster.add_application_user(user, now=moment, replace=args.replace)
        return f"{cluster.name}: application user {user.name} saved (digest realm {realm})"

    return mutate(args, change)


def cmd_app_user_remove(args: argparse.Namespace) -> int:
    """``lab app-user remove NAME``."""

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.remove_application_user(args.name, now=moment)
        return f"{cluster.name}: application user {args.name} removed"

    return mutate(args, change)


def cmd_sip_realm_add(args: argparse.Namespace) -> int:
    """``lab sip-realm add REALM --user U``: the cluster's credentials as UAC (item 43)."""
    realm = SipRealm(args.realm, args.user, _secret(args, REALM_PASSWORD_ENV, "SIP realm"))

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.add_sip_realm(realm, now=moment, replace=args.replace)
        return f"{cluster.name}: SIP realm {realm.realm} saved (user {realm.user})"

    return mutate(args, change)


def cmd_sip_realm_remove(args: argparse.Namespace) -> int:
    """``lab sip-realm remove REALM``."""

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.remove_sip_realm(args.realm, now=moment)
        return f"{cluster.name}: SIP realm {args.realm} removed"

    return mutate(args, change)


# --- registration ----------------------------------------------------------------------------


def _group(sub: Sub, name: str, text: str) -> Sub:
    """A sub-command group such as ``lab trunk`` with its own ``add``/``list``/``remove``."""
    parser = sub.add_parser(name, help=text, description=text)
    actions = parser.add_subparsers(dest=f"{name.replace('-', '_')}_command", metavar="ACTION")
    actions.required = True
    return actions


def _add_list(group: Sub, key: str, line: Callable[[dict[str, Any]], str], text: str) -> None:
    def handler(args: argparse.Namespace) -> int:
        return _list(args, key, line)

    p = add_command(group, "list", handler, text)
    lab_arguments(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def add_parsers(commands: Sub) -> None:
    """``lab trunk-profile``, ``lab trunk``, ``lab app-user``, ``lab sip-realm`` (items 43-44)."""
    allow_help = (
        "request types allowed: refer, notify, replaces, subscribe (comma-separated) or all"
    )
    replace_help = "overwrite an existing entry of that name"

    group = _group(commands, "trunk-profile", "SIP trunk security profiles (items 43-44)")
    p = add_command(group, "add", cmd_trunk_profile_add, "add a SIP trunk security profile")
    lab_arguments(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--allow", default="", metavar="LIST", help=allow_help + " (default none)")
    p.add_argument("--digest", action="store_true", help="challenge trunk requests (item 43)")
    p.add_argument(
        "--app-auth",
        action="store_true",
        help="application-level authorization after digest (needs --digest, item 44)",
    )
    p.add_argument("--challenge", type=int, default=401, choices=(401, 407))
    p.add_argument("--replace", action="store_true", help=replace_help)
    _add_list(group, "trunk_profiles", _profile_line, "list the trunk security profiles")
    p = add_command(group, "remove", cmd_trunk_profile_remove, "delete an unused profile")
    lab_arguments(p)
    p.add_argument("name", metavar="NAME")

    group = _group(commands, "trunk", "SIP trunks: peers known by their source address")
    p = add_command(group, "add", cmd_trunk_add, "add a SIP trunk")
    lab_arguments(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--address",
        action="append",
        required=True,
        metavar="IP[/PREFIX]",
        help="the peer's source address or network (repeat for several)",
    )
    p.add_argument("--profile", required=True, metavar="NAME", help="its security profile")
    p.add_argument("--replace", action="store_true", help=replace_help)
    _add_list(group, "trunks", _trunk_line, "list the SIP trunks")
    p = add_command(group, "remove", cmd_trunk_remove, "delete a SIP trunk")
    lab_arguments(p)
    p.add_argument("name", metavar="NAME")

    group = _group(commands, "app-user", "application users trunk peers authenticate as")
    p = add_command(group, "add", cmd_app_user_add, "add an application user (stores HA1 only)")
    lab_arguments(p)
    p.add_argument("name", metavar="NAME", help="also its digest user ID")
    p.add_argument("--password", metavar="P", help=f"digest password (or ${APP_PASSWORD_ENV})")
    p.add_argument("--allow", default="", metavar="LIST", help=allow_help + " (default none)")
    p.add_argument("--replace", action="store_true", help=replace_help)
    _add_list(group, "application_users", _user_line, "list the application users")
    p = add_command(group, "remove", cmd_app_user_remove, "delete an application user")
    lab_arguments(p)
    p.add_argument("name", metavar="NAME")

    group = _group(commands, "sip-realm", "credentials the cluster answers trunk challenges with")
    p = add_command(group, "add", cmd_sip_realm_add, "add the credentials for a realm (item 43)")
    lab_arguments(p)
    p.add_argument("realm", metavar="REALM")
    p.add_argument("--user", required=True, metavar="U")
    p.add_argument("--password", metavar="P", help=f"password (or ${REALM_PASSWORD_ENV})")
    p.add_argument("--replace", action="store_true", help=replace_help)
    _add_list(group, "sip_realms", _realm_line, "list the SIP realms")
    p = add_command(group, "remove", cmd_sip_realm_remove, "delete the credentials for a realm")
    lab_arguments(p)
    p.add_argument("realm", metavar="REALM")
