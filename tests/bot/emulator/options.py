"""A slash command's options as Discord's client sends them: typed by the synced command, checked
as the client checks them, with the users, roles, channels and attachments they name resolved."""

from __future__ import annotations

import logging
from collections.abc import Container, Mapping
from typing import Any

from .world import ADMINISTRATOR, EmuChannel, EmuGuild, EmuMember, EmuRole, EmuUser

log = logging.getLogger(__name__)

# Application command option types, as numbered by the API.
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = (
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
)


def slash_data(
    command: dict[str, Any],
    name: str,
    values: dict[str, Any],
    guild: EmuGuild,
    *,
    validate: bool,
    files: Container[int],
) -> dict[str, Any]:
    """The ``data`` of an INTERACTION_CREATE for ``/name`` (``"group sub"`` for subcommands)
    with option ``values``; ``files`` are the attachment ids on the CDN."""
    parts = name.split()
    resolved: dict[str, dict[str, Any]] = {}
    spec: dict[str, Any] = command
    path = [parts[0]]
    chain: list[dict[str, Any]] = []
    for part in parts[1:]:
        sub = next(
            (
                o
                for o in spec.get("options", [])
                if o["name"] == part and o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)
            ),
            None,
        )
        if sub is None:
            raise LookupError(f"/{' '.join(path)} has no subcommand {part!r}")
        spec = sub
        path.append(part)
        chain.append(sub)
    if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in spec.get("options", [])):
        raise ValueError(f"/{' '.join(path)} is a group; name one of its subcommands")
    leaf = _build_options(
        spec.get("options", []), values, guild, resolved, validate=validate, path=path, files=files
    )
    for sub in reversed(chain):
        leaf = [{"name": sub["name"], "type": sub["type"], "options": leaf}]
    data: dict[str, Any] = {
        "id": command["id"],
        "name": command["name"],
        "type": 1,
        "options": leaf,
    }
    if command.get("guild_id"):
        data["guild_id"] = command["guild_id"]
    if resolved:
        data["resolved"] = resolved
    return data


def _build_options(
    spec: list[dict[str, Any]],
    values: dict[str, Any],
    guild: EmuGuild,
    resolved: dict[str, dict[str, Any]],
    *,
    validate: bool,
    path: list[str],
    files: Container[int],
) -> list[dict[str, Any]]:
    where = "/" + " ".join(path)
    known = {o["name"]: o for o in spec}
    unknown = [k for k in values if k not in known]
    if unknown:
        raise ValueError(f"{where} has no option(s) {unknown}; it has {list(known)}")
    out: list[dict[str, Any]] = []
    for option in spec:
        name = option["name"]
        if name not in values or values[name] is None:
            if option.get("required") and validate:
                raise ValueError(f"{where} needs option {name!r}")
            continue
        value = _option_value(option, values[name], guild, resolved, validate, where, files)
        out.append({"name": name, "type": option["type"], "value": value})
    return out


def _option_value(
    option: dict[str, Any],
    value: Any,
    guild: EmuGuild,
    resolved: dict[str, dict[str, Any]],
    validate: bool,
    where: str,
    files: Container[int],
) -> Any:
    kind, name = option["type"], option["name"]

    def refuse(why: str) -> ValueError:
        return ValueError(f"{where} option {name!r}: {why}")

    if kind == STRING:
        if not isinstance(value, str):
            raise refuse(f"expects a str, got {value!r}")
        if validate and not option.get("min_length", 0) <= len(value) <= option.get(
            "max_length", 6000
        ):
            raise refuse(f"length {len(value)} is outside the allowed range")
    elif kind in (INTEGER, NUMBER):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise refuse(f"expects a number, got {value!r}")
        if kind == INTEGER and value != int(value):
            raise refuse(f"expects an integer, got {value!r}")
        value = int(value) if kind == INTEGER else value
        low, high = option.get("min_value"), option.get("max_value")
        if validate and (low is not None and value < low or high is not None and value > high):
            raise refuse(f"{value} is outside [{low}, {high}]")
    elif kind == BOOLEAN:
        if not isinstance(value, bool):
            raise refuse(f"expects a bool, got {value!r}")
    elif kind in (USER, MENTIONABLE) and isinstance(value, EmuMember | EmuUser):
        member = guild.get_member(value.id)
        user = value.user if isinstance(value, EmuMember) else value
        resolved.setdefault("users", {})[str(user.id)] = user.payload()
        if member is not None:
            resolved.setdefault("members", {})[str(user.id)] = member.payload(
                with_user=False, with_permissions=True
            )
        return str(user.id)
    elif kind in (ROLE, MENTIONABLE) and isinstance(value, EmuRole):
        resolved.setdefault("roles", {})[str(value.id)] = value.payload()
        return str(value.id)
    elif kind == CHANNEL and isinstance(value, EmuChannel):
        allowed = option.get("channel_types")
        if validate and allowed and value.type not in allowed:
            raise refuse(f"channel type {value.type} is not one of {allowed}")
        entry = {
            k: v for k, v in value.payload().items() if k in ("id", "name", "type", "parent_id")
        }
        resolved.setdefault("channels", {})[str(value.id)] = entry | {
            "permissions": str(ADMINISTRATOR)
        }
        return str(value.id)
    elif kind == ATTACHMENT:
        if not isinstance(value, Mapping) or int(value.get("id", 0)) not in files:
            raise refuse("expects a payload from emu.add_attachment()")
        resolved.setdefault("attachments", {})[str(value["id"])] = dict(value)
        return str(value["id"])
    else:
        raise refuse(f"cannot send {value!r} as option type {kind}")
    choices = option.get("choices")
    if validate and choices and value not in [c["value"] for c in choices]:
        raise refuse(f"{value!r} is not one of the choices {[c['value'] for c in choices]}")
    return value
