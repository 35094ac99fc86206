"""How the bot answers an interaction: the callback, then the interaction's webhook (follow-ups,
and edits and deletes of the original response and the follow-ups)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from . import errors
from .channels import MessageBoard
from .interactions import InteractionRecord, Interactions
from .messages import check_sizes, message_body, recorded_body, validate, validate_modal
from .records import CallbackRecord, MessageRecord, loop_time
from .routing import API_PREFIX, json_response
from .state import State

log = logging.getLogger(__name__)

# Interaction type → the callback types Discord accepts for it (4: autocomplete → 8).
_CALLBACKS_FOR = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}


class InteractionRoutes:
    """``/interactions/{id}/{token}/callback`` and ``/webhooks/{application_id}/{token}``."""

    def __init__(self, state: State, interactions: Interactions, board: MessageBoard) -> None:
        self.state = state
        self.interactions = interactions
        self.board = board

    def routes(self) -> list[web.AbstractRouteDef]:
        callback = API_PREFIX + "/interactions/{interaction_id}/{interaction_token}/callback"
        webhook = API_PREFIX + "/webhooks/{application_id}/{webhook_token}"
        return [
            web.post(callback, self.callback),
            web.post(webhook, self.execute_webhook),
            web.get(webhook + "/messages/{message_id}", self.get_webhook_message),
            web.patch(webhook + "/messages/{message_id}", self.edit_webhook_message),
            web.delete(webhook + "/messages/{message_id}", self.delete_webhook_message),
        ]

    async def callback(self, request: web.Request) -> web.StreamResponse:
        raw_id = request.match_info["interaction_id"]
        interaction = self.interactions.get(int(raw_id)) if raw_id.isdigit() else None
        if interaction is None or interaction.token != request.match_info["interaction_token"]:
            raise errors.unknown_interaction()
        body, uploads = await recorded_body(request)
        if interaction.callback is not None:
            raise errors.already_acknowledged()
        after = loop_time() - interaction.dispatched_at
        deadline = self.state.app.callback_deadline
        if interaction.expired or (deadline is not None and after > deadline):
            raise errors.unknown_interaction()
        if not isinstance(body, dict) or not isinstance(body.get("type"), int):
            raise errors.invalid_form({"type": "BASE_TYPE_REQUIRED: This field is required"})
        kind = body["type"]
        data = body.get("data") or {}
        if kind not in _CALLBACKS_FOR.get(interaction.type, set()):
            raise errors.invalid_form(
                {"type": "INTERACTION_RESPONSE_TYPE_INVALID: Invalid interaction response type"}
            )
        if kind in (4, 7):
            validate(data, upload_count=len(uploads))
            check_sizes(uploads, self.state.app.upload_limit)
        if kind == 9:
            validate_modal(data)
        message: MessageRecord | None = None
        channel = interaction.channel
        if kind == 4:
            message = await self.board.create(
                channel=channel, via="response", body=data, uploads=uploads, interaction=interaction
            )
        elif kind == 5:
            message = await self.board.create(
                channel=channel,
                via="response",
                body={"flags": data.get("flags", 0)},
                uploads=[],
                interaction=interaction,
                loading=True,
            )
        elif kind in (6, 7):
            message = interaction.source
            if kind == 7 and message is not None:
                await self.board.edit(message, data, uploads)
        files = message.files if message is not None and kind in (4, 7) else ()
        interaction.callback = CallbackRecord(type=kind, data=data, after=after, files=files)
        if kind in (4, 5):
            interaction.original = message
        self.state.changes.notify()
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        summary: dict[str, Any] = {"id": str(interaction.id), "type": interaction.type}
        resource: dict[str, Any] = {"type": kind}
        if message is not None and kind != 6:
            summary |= {
                "response_message_id": str(message.id),
                "response_message_loading": kind == 5,
                "response_message_ephemeral": message.ephemeral,
            }
            resource["message"] = message.payload
        return json_response({"interaction": summary, "resource": resource})

    def _webhook_interaction(self, request: web.Request) -> InteractionRecord:
        interaction = self.interactions.for_webhook(
            request.match_info["application_id"], request.match_info["webhook_token"]
        )
        if interaction.expired:
            raise errors.invalid_webhook_token()
        return interaction

    def _webhook_message(
        self, request: web.Request, interaction: InteractionRecord
    ) -> MessageRecord:
        wanted = request.match_info["message_id"]
        if interaction.callback is None:
            raise errors.unknown_message()
        if wanted == "@original":
            message = interaction.original
        else:
            candidates = [interaction.original, *interaction.followups]
            message = next((m for m in candidates if m is not None and str(m.id) == wanted), None)
        if message is None or message.deleted:
            raise errors.unknown_message()
        return message

    async def execute_webhook(self, request: web.Request) -> web.StreamResponse:
        interaction = self._webhook_interaction(request)
        body, uploads = await message_body(request, self.state.app.upload_limit)
        if interaction.callback is None:
            raise errors.unknown_webhook()
        original = interaction.original
        if (
            interaction.callback.type == 5
            and original is not None
            and original.loading
            and not original.deleted
        ):
            # The first follow-up after a deferral replaces the "thinking" message; it keeps the
            # deferral's ephemerality whatever flags it asks for.
            message = original
            edit = {k: v for k, v in body.items() if k != "flags"}
            await self.board.edit(message, edit, uploads)
        else:
            message = await self.board.create(
                channel=interaction.channel,
                via="followup",
                body=body,
                uploads=uploads,
                interaction=interaction,
            )
        interaction.followups.append(message)
        self.state.changes.notify()
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(message.payload)
        return web.Response(status=204)

    async def get_webhook_message(self, request: web.Request) -> web.StreamResponse:
        interaction = self._webhook_interaction(request)
        return json_response(self._webhook_message(request, interaction).payload)

    async def edit_webhook_message(self, request: web.Request) -> web.StreamResponse:
        interaction = self._webhook_interaction(request)
        message = self._webhook_message(request, interaction)
        body, uploads = await message_body(request, self.state.app.upload_limit)
        await self.board.edit(message, body, uploads)
        return json_response(message.payload)

    async def delete_webhook_message(self, request: web.Request) -> web.StreamResponse:
        interaction = self._webhook_interaction(request)
        message = self._webhook_message(request, interaction)
        await self.board.delete(message)
        return web.Response(status=204)
