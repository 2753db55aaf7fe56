"""Who may write which audit action: the registry's own namespaces are reserved to it.

An action is ``namespace.verb`` (``check_action``). The rule:

- The registry's namespaces (:data:`REGISTRY_NAMESPACES`: ``model.``, ``model_type.``,
  ``permission.``, ``artifact.``, ``parameters.``, ``alias.``, ``iov_tag.``, ``iov.``,
  ``global_tag.``, ``token.``) are written only by the registry itself, in the transaction of the
  change they record. ``RecordAuditEvent`` refuses them to every caller, admins included, with
  PERMISSION_DENIED: the request is well formed, but writing in the registry's namespace is a
  right no caller has (as moving ``production`` is a right a reader lacks). An event in these
  namespaces is therefore always one the registry wrote.
- ``RecordAuditEvent`` records only the other services' namespaces (:data:`RECORDABLE`), each
  with the role the change it records needs: ``deployment.`` (the inference service; deployer,
  since Deploy, Undeploy and Rollback need it, but ``deployment.follow_alias``, which the
  inference service writes with its own publisher token when a followed alias moves: publisher),
  ``dataset.`` and ``training.`` (publisher). A role below is PERMISSION_DENIED; any other
  namespace is INVALID_ARGUMENT.
- A ``deployment.`` event of a model is also the registry's authorisation of that change
  (:func:`model_role`): the inference service records it *before* it deploys, undeploys, rolls
  back or replaces anything, and changes nothing when it is refused. So recording one needs the
  right to change that model at the deployer level, the rule an alias move obeys
  (``permissions.check_may_change``): on a *restricted* model, the owner, an admin, or a grant of
  deployer on it. One home for that rule: here, not in the inference service. The exception is
  ``deployment.follow_alias``: that switch follows an alias move the registry authorised when it
  was made (the service records it with its own token). A model that does not exist (deleted
  while deployed) restricts nothing: its undeploy is recorded with the role check alone.
- The actor is always the authenticated caller. The details are the recorder's facts, never an
  identity: keys naming the event's own fields or a person (:data:`RESERVED_DETAIL_KEYS`:
  ``actor``, ``by``, ...) are INVALID_ARGUMENT, so no details entry can pass for who did it.
"""

from __future__ import annotations

from collections.abc import Mapping

from beamops.common.v1 import auth_pb2
from beamops.runtime.auth import ROLE_NAMES, Principal
from beamops.runtime.errors import InvalidArgument, PermissionDenied
from beamops.runtime.text import check_line

#: Namespaces of the actions the registry writes itself (registry.py, token_admin.py); every
#: server-side write is checked against this set (:func:`check_server_action`).
REGISTRY_NAMESPACES = frozenset({
    "model", "model_type", "permission", "artifact", "parameters", "alias", "iov_tag", "iov",
    "global_tag", "token",
})

#: Namespaces RecordAuditEvent records, with the least role for each.
RECORDABLE = {
    "deployment": auth_pb2.ROLE_DEPLOYER,
    "dataset": auth_pb2.ROLE_PUBLISHER,
    "training": auth_pb2.ROLE_PUBLISHER,
}
#: Actions whose least role differs from their namespace's.
ACTION_ROLES = {
    "deployment.follow_alias": auth_pb2.ROLE_PUBLISHER,  # written with the inference service's token
}

#: Namespaces whose events of a model record (and authorise) a change of what that model serves,
#: with the role needed on the model (permissions.check_may_change), and the actions exempted.
MODEL_CHANGES = {"deployment": auth_pb2.ROLE_DEPLOYER}
NOT_MODEL_CHANGES = frozenset({"deployment.follow_alias"})  # follows an alias move already authorised

#: Details keys that could pass for the event's own fields or for who made the change.
RESERVED_DETAIL_KEYS = frozenset({
    "actor", "by", "action", "event_id", "event_time", "model", "resource", "reason", "request_id",
    "details",
})
MAX_DETAILS = 50
MAX_DETAIL_KEY = 100
MAX_DETAIL_VALUE = 2000


def namespace(action: str) -> str:
    return action.split(".", 1)[0]


def check_server_action(action: str) -> str:
    """A registry-written action must be in a reserved namespace, or it could be forged through
    RecordAuditEvent: a programming error, caught by the service tests of every mutation."""
    if namespace(action) not in REGISTRY_NAMESPACES:
        raise RuntimeError(f"the registry writes audit action {action!r} outside its reserved "
                           "namespaces; add its namespace to REGISTRY_NAMESPACES")
    return action


def check_recordable(principal: Principal, action: str) -> str:
    """May ``principal`` record ``action`` (already well formed) through RecordAuditEvent?"""
    ns = namespace(action)
    allowed = ", ".join(f"'{n}.'" for n in RECORDABLE)
    if ns in REGISTRY_NAMESPACES:
        raise PermissionDenied(
            f"audit action {action!a} is in the registry's own namespace '{ns}.': only the registry "
            f"records those, with the change itself; RecordAuditEvent records the other services' "
            f"actions ({allowed})", action=action)
    if ns not in RECORDABLE:
        raise InvalidArgument(f"audit action {action!a} is in no namespace RecordAuditEvent records; "
                              f"use one of {allowed}", field="action")
    needed = ACTION_ROLES.get(action, RECORDABLE[ns])
    if not principal.may(needed):
        raise PermissionDenied(
            f"recording audit action {action!a} needs the {ROLE_NAMES[needed]} role (that of the "
            f"change it records); {principal.name!a} has the {ROLE_NAMES.get(principal.role, 'no')} "
            "role", action=action)
    return action


def model_role(action: str) -> int | None:
    """The role on the event's model that recording ``action`` needs (checked against the model's
    owner, restriction and grants), or None when recording it changes nothing of a model's."""
    if action in NOT_MODEL_CHANGES:
        return None
    return MODEL_CHANGES.get(namespace(action))


def check_details(details: Mapping[str, str]) -> dict[str, str]:
    """The details of a recorded event: bounded, one-line text, no key that names an identity."""
    details = dict(details or {})
    if len(details) > MAX_DETAILS:
        raise InvalidArgument(f"details: at most {MAX_DETAILS} entries, {len(details)} were sent",
                              field="details")
    for key, value in details.items():
        check_line(key, "details key", field="details", limit=MAX_DETAIL_KEY)
        if not key:
            raise InvalidArgument("details: a key is empty", field="details")
        if key.lower() in RESERVED_DETAIL_KEYS:
            raise InvalidArgument(
                f"details key {key!a} is reserved: the actor is always the authenticated caller and "
                f"the event's own fields are set by the registry; reserved keys: "
                f"{', '.join(sorted(RESERVED_DETAIL_KEYS))}", field="details")
        check_line(value, f"value of details key {key!a}", field="details", limit=MAX_DETAIL_VALUE)
    return details
