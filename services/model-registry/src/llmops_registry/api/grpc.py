"""ModelRegistryService over gRPC: translate, call the use case, translate back.

The caller is the principal the kit's interceptor resolved from the API key, never the request
body. Every RPC checks its role with llmops_kit.auth.require() (the edge lets any `member` in):
reads need `member`; writes of the caller's tenant's own versions, aliases and labels need
`maintainer`; shared ones (`shared = true`) need `admin`. Reads resolve for the caller's tenant.
"""

from __future__ import annotations

import grpc

from llmops.registry.v1 import registry_pb2 as pb
from llmops.registry.v1 import registry_pb2_grpc
from llmops_kit.auth import Principal, Role, require
from llmops_kit.context import current_trace_id
from llmops_kit.errors import Unauthenticated
from llmops_registry.api import convert
from llmops_registry.domain.model import Actor
from llmops_registry.domain.models import ModelRegistry
from llmops_registry.domain.prompts import PromptRegistry

SERVICE_NAME = "llmops.registry.v1.ModelRegistryService"


def _caller(role: Role, action: str) -> Principal:
    principal = require(role, action)
    if not principal.tenant:
        raise Unauthenticated("NO_TENANT", "request has no tenant")
    return principal


def _reader(action: str) -> str:
    """The tenant a read is made for (any member)."""
    return _caller(Role.MEMBER, action).tenant


def _writer(action: str, shared: bool) -> Actor:
    """The actor of a write: admin for shared data, maintainer for the tenant's own."""
    if shared:
        principal = _caller(Role.ADMIN, f"{action} with shared=true")
    else:
        principal = _caller(Role.MAINTAINER, action)
    return Actor(principal.tenant, current_trace_id() or "", principal.key_id)


def _selected(request: pb.GetModelVersionRequest | pb.GetPromptVersionRequest
              | pb.RenderPromptRequest, pointer_field: str) -> tuple[int | None, str | None]:
    which = request.WhichOneof("selector")
    if which == "version":
        return request.version, None
    if which == pointer_field:
        return None, str(getattr(request, pointer_field))
    return None, None


class RegistryServicer(registry_pb2_grpc.ModelRegistryServiceServicer):
    def __init__(self, models: ModelRegistry, prompts: PromptRegistry) -> None:
        self.models = models
        self.prompts = prompts

    # ------------------------------------------------------------------ models

    async def RegisterModelVersion(self, request: pb.RegisterModelVersionRequest,
                                   context: grpc.aio.ServicerContext) -> pb.ModelVersion:
        actor = _writer("RegisterModelVersion", request.shared)
        new = self.models.validate_new(request.name, request.artifact_uri, request.base_model,
                                       request.format, dict(request.metadata),
                                       convert.lineage_from_pb(request.lineage))
        return convert.model_version_pb(await self.models.register(actor, new, request.shared))

    async def GetModelVersion(self, request: pb.GetModelVersionRequest,
                              context: grpc.aio.ServicerContext) -> pb.ModelVersion:
        tenant = _reader("GetModelVersion")
        version, alias = _selected(request, "alias")
        return convert.model_version_pb(await self.models.get(tenant, request.name, version,
                                                              alias))

    async def ListModelVersions(self, request: pb.ListModelVersionsRequest,
                                context: grpc.aio.ServicerContext) -> pb.ListModelVersionsResponse:
        page = await self.models.list_versions(_reader("ListModelVersions"), request.name,
                                               request.page.page_size, request.page.page_token)
        return pb.ListModelVersionsResponse(
            versions=[convert.model_version_pb(m) for m in page.items],
            next_page_token=page.next_token)

    async def ListModels(self, request: pb.ListModelsRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        page = await self.models.list_models(_reader("ListModels"), request.page.page_size,
                                             request.page.page_token)
        return pb.ListModelsResponse(models=[convert.model_summary_pb(s) for s in page.items],
                                     next_page_token=page.next_token)

    async def SetAlias(self, request: pb.SetAliasRequest,
                       context: grpc.aio.ServicerContext) -> pb.SetAliasResponse:
        move = await self.models.set_alias(_writer("SetAlias", request.shared), request.name,
                                           request.alias, request.version, request.reason,
                                           request.shared)
        return pb.SetAliasResponse(previous_version=move.previous_version, version=move.version,
                                   changed=move.changed)

    async def DeleteAlias(self, request: pb.DeleteAliasRequest,
                          context: grpc.aio.ServicerContext) -> pb.DeleteAliasResponse:
        previous = await self.models.delete_alias(_writer("DeleteAlias", request.shared),
                                                  request.name, request.alias, request.reason,
                                                  request.shared)
        return pb.DeleteAliasResponse(previous_version=previous)

    async def GetAliasHistory(self, request: pb.GetAliasHistoryRequest,
                              context: grpc.aio.ServicerContext) -> pb.GetAliasHistoryResponse:
        page = await self.models.alias_history(_reader("GetAliasHistory"), request.name,
                                               request.alias, request.page.page_size,
                                               request.page.page_token)
        return pb.GetAliasHistoryResponse(
            changes=[convert.alias_change_pb(c) for c in page.items],
            next_page_token=page.next_token)

    # ------------------------------------------------------------------ prompts

    async def CreatePromptVersion(self, request: pb.CreatePromptVersionRequest,
                                  context: grpc.aio.ServicerContext) -> pb.PromptVersion:
        actor = _writer("CreatePromptVersion", request.shared)
        new = self.prompts.validate_new(request.name, request.template, request.description)
        created = await self.prompts.create(actor, new, list(request.labels), request.shared)
        return convert.prompt_version_pb(created)

    async def GetPromptVersion(self, request: pb.GetPromptVersionRequest,
                               context: grpc.aio.ServicerContext) -> pb.PromptVersion:
        tenant = _reader("GetPromptVersion")
        version, label = _selected(request, "label")
        return convert.prompt_version_pb(await self.prompts.get(tenant, request.name, version,
                                                                label))

    async def ListPromptVersions(self, request: pb.ListPromptVersionsRequest,
                                 context: grpc.aio.ServicerContext) -> pb.ListPromptVersionsResponse:
        page = await self.prompts.list_versions(_reader("ListPromptVersions"), request.name,
                                                request.page.page_size, request.page.page_token)
        return pb.ListPromptVersionsResponse(
            versions=[convert.prompt_version_pb(p) for p in page.items],
            next_page_token=page.next_token)

    async def ListPrompts(self, request: pb.ListPromptsRequest,
                          context: grpc.aio.ServicerContext) -> pb.ListPromptsResponse:
        page = await self.prompts.list_prompts(_reader("ListPrompts"), request.page.page_size,
                                               request.page.page_token)
        return pb.ListPromptsResponse(prompts=[convert.prompt_summary_pb(s) for s in page.items],
                                      next_page_token=page.next_token)

    async def SetPromptLabel(self, request: pb.SetPromptLabelRequest,
                             context: grpc.aio.ServicerContext) -> pb.SetPromptLabelResponse:
        move = await self.prompts.set_label(_writer("SetPromptLabel", request.shared),
                                            request.name, request.label, request.version,
                                            request.reason, request.shared)
        return pb.SetPromptLabelResponse(previous_version=move.previous_version,
                                         version=move.version, changed=move.changed)

    async def GetPromptLabelHistory(self, request: pb.GetPromptLabelHistoryRequest,
                                    context: grpc.aio.ServicerContext) -> pb.GetPromptLabelHistoryResponse:
        page = await self.prompts.label_history(_reader("GetPromptLabelHistory"), request.name,
                                                request.label, request.page.page_size,
                                                request.page.page_token)
        return pb.GetPromptLabelHistoryResponse(
            changes=[convert.label_change_pb(c) for c in page.items],
            next_page_token=page.next_token)

    async def RenderPrompt(self, request: pb.RenderPromptRequest,
                           context: grpc.aio.ServicerContext) -> pb.RenderPromptResponse:
        tenant = _reader("RenderPrompt")
        version, label = _selected(request, "label")
        prompt, text = await self.prompts.render(
            tenant, request.name, dict(request.variables), convert.documents_from_pb(request.documents),
            version=version, label=label)
        return pb.RenderPromptResponse(text=text, name=prompt.name, version=prompt.version)
