"""The groups people are put in: each carries API scopes and the Django model permissions that match them.

One permission model. A scope is a permission (fleet/auth.py), so a group holds the scopes its members use on the
API and, beside them, the model permissions they use in the admin — and the two agree: whoever may change an ops
record in the admin holds write:ops, whoever may move a device's lifecycle there holds admin:fleet (the admin asks
for the scope itself, through domain.access, as the API does).

- Ops clerk (read:fleet, write:ops): the alarms list (acknowledge, open a ticket), tickets (open, work, comment),
  the service log and what is due, odometer readings; reads vehicles, devices, drivers and their assignments, and
  the dispatch log.
- Dispatcher (read:fleet, write:ops): the dispatch log and driver assignments (a new one goes through the log);
  tickets (open, comment); the alarms list; reads vehicles, devices, drivers and the service log.
- Manager (read:fleet, write:ops): reads what ops and the domain hold; assigns and closes tickets; sets cost rates.
- Fleet admin (read:fleet, write:ops, admin:fleet): vehicles, devices (lifecycle, CSV import), drivers, accounts,
  push sources, re-parse, SLO targets, the projection work-list, and all of ops.
- read:fleet, write:ops, admin:fleet: that one scope and no model permission (API users, service accounts).

Created by a migration (fleet/migrations/0003) and kept complete after every migrate (post_migrate, fleet/apps.py):
a group that is missing is created and a declared permission it lacks is added — a model that a later migration
creates reaches its groups the same way. Nothing is ever removed: permissions added in the admin stay, but one
removed there that is declared here comes back on the next migrate; change it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.access import ADMIN_FLEET, READ_FLEET, WRITE_OPS

OPS_CLERK = "Ops clerk"
DISPATCHER = "Dispatcher"
MANAGER = "Manager"
FLEET_ADMIN = "Fleet admin"
ROLE_GROUPS = (OPS_CLERK, DISPATCHER, MANAGER, FLEET_ADMIN)


@dataclass(frozen=True)
class GroupSpec:
    scopes: tuple[str, ...]
    permissions: tuple[str, ...]  # "app_label.codename"


def _crud(label: str, *verbs: str) -> tuple[str, ...]:
    """ "ops.ticket", "view", "add" → ("ops.view_ticket", "ops.add_ticket")."""
    app, model = label.split(".")
    return tuple(f"{app}.{verb}_{model}" for verb in verbs)


def _views(*labels: str) -> tuple[str, ...]:
    return tuple(p for label in labels for p in _crud(label, "view"))


ALL = ("view", "add", "change", "delete")
DOMAIN_READS = _views("domain.vehicle", "domain.device", "domain.driver", "domain.driverassignment")
DOMAIN_REFERENCE = _views("domain.account", "domain.costcentre", "domain.assignedcity")

GROUPS: dict[str, GroupSpec] = {
    OPS_CLERK: GroupSpec(
        scopes=(READ_FLEET, WRITE_OPS),
        permissions=(
            *DOMAIN_READS,
            *_views("state.alarm"),
            *_crud("state.odometerreading", "view", "add"),
            *_crud("ops.ticket", "view", "add", "change"),
            *_crud("ops.ticketcomment", "view", "add"),
            *_crud("ops.servicelog", "view", "add", "change"),
            *_views("ops.dispatchlog"),
        ),
    ),
    DISPATCHER: GroupSpec(
        scopes=(READ_FLEET, WRITE_OPS),
        permissions=(
            *DOMAIN_READS,
            *_crud("domain.driverassignment", "add", "change"),
            *_views("state.alarm"),
            *_crud("ops.dispatchlog", "view", "add", "change"),
            *_crud("ops.ticket", "view", "add"),
            *_crud("ops.ticketcomment", "view", "add"),
            *_views("ops.servicelog"),
        ),
    ),
    MANAGER: GroupSpec(
        scopes=(READ_FLEET, WRITE_OPS),
        permissions=(
            *DOMAIN_READS,
            *DOMAIN_REFERENCE,
            *_views("state.alarm", "state.odometerreading"),
            *_crud("ops.ticket", "view", "change"),
            *_crud("ops.ticketcomment", "view", "add"),
            *_views("ops.servicelog", "ops.dispatchlog", "slo.slotarget", "slo.sloalert"),
            *_crud("ops.costrate", "view", "add", "change"),
        ),
    ),
    FLEET_ADMIN: GroupSpec(
        scopes=(READ_FLEET, WRITE_OPS, ADMIN_FLEET),
        permissions=(
            *(
                p
                for label in (
                    "domain.vehicle",
                    "domain.device",
                    "domain.driver",
                    "domain.driverassignment",
                    "domain.account",
                    "domain.costcentre",
                    "domain.assignedcity",
                )
                for p in _crud(label, *ALL)
            ),
            *_crud("events.pushsource", *ALL),
            *_views("events.rawevent", "events.parsedevent", "events.pushrejection"),
            "events.reparse_rawevent",
            *_crud("state.projectionpending", "view", "change"),
            *_views("state.projectorcheckpoint", "state.alarm", "slo.sloalert"),
            *_crud("state.odometerreading", "view", "add"),
            *_crud("slo.slotarget", "view", "change"),
            *(
                p
                for label in ("ops.ticket", "ops.ticketcomment", "ops.servicelog", "ops.dispatchlog", "ops.costrate")
                for p in _crud(label, *ALL)
            ),
        ),
    ),
    # One group per scope, named after it: API users and service accounts that need a scope and no admin.
    **{scope: GroupSpec(scopes=(scope,), permissions=()) for scope in (READ_FLEET, WRITE_OPS, ADMIN_FLEET)},
}


def scope_permission(scope: str) -> str:
    """ "write:ops" → "fleet.scope_write_ops" (the permission that grants it)."""
    return "fleet.scope_" + scope.replace(":", "_")


def group_permissions(spec: GroupSpec) -> tuple[str, ...]:
    return (*(scope_permission(scope) for scope in spec.scopes), *spec.permissions)


class UnknownPermission(LookupError):
    pass


def groups_ensure(*, apps: Any, strict: bool = True) -> dict[str, int]:
    """Create the missing groups and add the declared permissions they lack; returns how many were added per group.

    `apps` is the app registry (a migration's historical one, or django.apps.apps). `strict`: an unknown permission
    raises (a typo); a migration passes False, since a model a later migration creates has no permission yet."""
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    wanted = {perm for spec in GROUPS.values() for perm in group_permissions(spec)}
    found = {
        f"{app}.{codename}": pk
        for pk, app, codename in permission_model.objects.filter(
            codename__in={p.split(".", 1)[1] for p in wanted}
        ).values_list("pk", "content_type__app_label", "codename")
    }
    if strict and (missing := sorted(wanted - set(found))):
        raise UnknownPermission(f"no such permission: {', '.join(missing)}")
    added: dict[str, int] = {}
    for name, spec in GROUPS.items():
        group, _ = group_model.objects.get_or_create(name=name)
        ids = {found[p] for p in group_permissions(spec) if p in found}
        lacking = ids - set(group.permissions.values_list("pk", flat=True))
        group.permissions.add(*lacking)
        added[name] = len(lacking)
    return added
