"""Who may change a model: the per-model permission rule, and the grants' reads and writes.

The rule (checked inside the transaction of every mutation of a model, so a grant removed is
effective on the grantee's next call):

1. the caller's *global* role must suffice for the operation (the RPC's ``required_role``, and
   deployer for protected aliases) -- a grant never raises it;
2. then, if the model is *open* (``restricted`` false, the default), that is enough;
3. if the model is *restricted*, the caller must also be an admin, the model's owner, or hold a
   grant on that model whose role is at least the role the operation needs.

Grants are managed by the model's owner or an admin (``SetModelPermission``,
``RemoveModelPermission``); every change is in the audit log (``permission.set``,
``permission.remove``).
"""

from __future__ import annotations

from sqlmodel import Session, select

from beamops.common.v1 import auth_pb2
from beamops.runtime.auth import ROLE_NAMES, Principal
from beamops.runtime.errors import PermissionDenied

from .tables import ModelPermissionRow


def may_change(principal: Principal, needed: int, owner: str, restricted: bool,
               grant: int | None) -> bool:
    """The rule above, as a pure function (``grant``: the caller's granted role on the model)."""
    if not principal.may(needed):
        return False
    if not restricted or principal.may(auth_pb2.ROLE_ADMIN) or principal.name == owner:
        return True
    return grant is not None and grant >= needed


def role_name(role: int) -> str:
    return ROLE_NAMES.get(role, "unknown")


def grant_of(s: Session, model_id: int, principal: str) -> ModelPermissionRow | None:
    return s.exec(select(ModelPermissionRow).where(
        ModelPermissionRow.model_id == model_id, ModelPermissionRow.principal == principal)).first()


def check_may_change(s: Session, principal: Principal, needed: int, model: str, model_id: int,
                     owner: str, restricted: bool) -> None:
    """Raise PermissionDenied, naming the model, unless ``principal`` may change it."""
    grant = None
    if restricted and principal.may(needed) and not principal.may(auth_pb2.ROLE_ADMIN) \
            and principal.name != owner:
        row = grant_of(s, model_id, principal.name)
        grant = row.role if row is not None else None
    if may_change(principal, needed, owner, restricted, grant):
        return
    if not principal.may(needed):
        raise PermissionDenied(
            f"changing model {model!r} this way needs the {role_name(needed)} role, and "
            f"{principal.name!r} is a {role_name(principal.role)}", model=model)
    if grant is None:
        raise PermissionDenied(
            f"model {model!r} is restricted: only its owner, admins and principals granted a role "
            f"on it may change it, and {principal.name!r} has no grant on it", model=model)
    raise PermissionDenied(
        f"model {model!r} is restricted and {principal.name!r} is granted only {role_name(grant)} "
        f"on it; this change needs {role_name(needed)}", model=model)


def check_may_manage(principal: Principal, model: str, owner: str) -> None:
    """Grants (and the restricted flag) are managed by the model's owner or an admin."""
    if principal.may(auth_pb2.ROLE_ADMIN) or principal.name == owner:
        return
    raise PermissionDenied(
        f"only the owner of model {model!r} ({owner!r}) or an admin may manage its permissions, "
        f"and {principal.name!r} is neither", model=model)
