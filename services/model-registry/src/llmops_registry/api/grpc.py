"""ModelRegistryService over gRPC: translate, call the use case, translate back.

The actor of every write is the tenant the kit's interceptor resolved from the API key; it is
never taken from the request body.
"""

from __future__ import annotations

import grpc

from llmops.registry.v1 import registry_pb2 as pb
from llmops.registry.v1 import registry_pb2_grpc
from llmops_kit.context import current_tenant, current_trace_id
from llmops_kit.errors import Unauthenticated
from llmops_registry.api import convert
from llmops_registry.domain.model import Actor
from llmops_registry.domain.models import ModelRegistry
from llmops_registry.domain.prompts import PromptRegistry

SERVICE_NAME = "llmops.registry.v1.ModelRegistryService"


def _actor() -> Actor:
    tenant = current_tenant()
    if not tenant:
        raise Unauthenticated("NO_TENANT", "request has no tenant")
    return Actor(tenant, current_trace_id() or "")


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
        actor = _actor()
        new = self.models.validate_new(request.name, request.artifact_uri, request.base_model,
                                       request.format, dict(request.metadata),
                                       convert.lineage_from_pb(request.lineage))
        return convert.model_version_pb(await self.models.register(actor, new))

    async def GetModelVersion(self, request: pb.GetModelVersionRequest,
                              context: grpc.aio.ServicerContext) -> pb.ModelVersion:
        _actor()
        version, alias = _selected(request, "alias")
        return convert.model_version_pb(await self.models.get(request.name, version, alias))

    async def ListModelVersions(self, request: pb.ListModelVersionsRequest,
                                context: grpc.aio.ServicerContext) -> pb.ListModelVersionsResponse:
        _actor()
        page = await self.models.list_versions(request.name, request.page.page_size,
                                               request.page.page_token)
        return pb.ListModelVersionsResponse(
            versions=[convert.model_version_pb(m) for m in page.items],
            next_page_token=page.next_token)

    async def ListModels(self, request: pb.ListModelsRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        _actor()
        page = await self.models.list_models(request.page.page_size, request.page.page_token)
        return pb.ListModelsResponse(models=[convert.model_summary_pb(s) for s in page.items],
                                     next_page_token=page.next_token)

    async def SetAlias(self, request: pb.SetAliasRequest,
                       context: grpc.aio.ServicerContext) -> pb.SetAliasResponse:
        move = await self.models.set_alias(_actor(), request.name, request.alias,
                                           request.version, request.reason)
        return pb.SetAliasResponse(previous_version=move.previous_version, version=move.version,
                                   changed=move.changed)

    async def DeleteAlias(self, request: pb.DeleteAliasRequest,
                          context: grpc.aio.ServicerContext) -> pb.DeleteAliasResponse:
        previous = await self.models.delete_alias(_actor(), request.name, request.alias,
                                                  request.reason)
        return pb.DeleteAliasResponse(previous_version=previous)

    async def GetAliasHistory(self, request: pb.GetAliasHistoryRequest,
                              context: grpc.aio.ServicerContext) -> pb.GetAliasHistoryResponse:
        _actor()
        page = await self.models.alias_history(request.name, request.alias,
                                               request.page.page_size, request.page.page_token)
        return pb.GetAliasHistoryResponse(
            changes=[convert.alias_change_pb(c) for c in page.items],
            next_page_token=page.next_token)

    # ------------------------------------------------------------------ prompts

    async def CreatePromptVersion(self, request: pb.CreatePromptVersionRequest,
                                  context: grpc.aio.ServicerContext) -> pb.PromptVersion:
        actor = _actor()
        new = self.prompts.validate_new(request.name, request.template, request.description)
        created = await self.prompts.create(actor, new, list(request.labels))
        return convert.prompt_version_pb(created)

    async def GetPromptVersion(self, request: pb.GetPromptVersionRequest,
                               context: grpc.aio.ServicerContext) -> pb.PromptVersion:
        _actor()
        version, label = _selected(request, "label")
        return convert.prompt_version_pb(await self.prompts.get(request.name, version, label))

    async def ListPromptVersions(self, request: pb.ListPromptVersionsRequest,
                                 context: grpc.aio.ServicerContext) -> pb.ListPromptVersionsResponse:
        _actor()
        page = await self.prompts.list_versions(request.name, request.page.page_size,
                                                request.page.page_token)
        return pb.ListPromptVersionsResponse(
            versions=[convert.prompt_version_pb(p) for p in page.items],
            next_page_token=page.next_token)

    async def ListPrompts(self, request: pb.ListPromptsRequest,
                          context: grpc.aio.ServicerContext) -> pb.ListPromptsResponse:
        _actor()
        page = await self.prompts.list_prompts(request.page.page_size, request.page.page_token)
        return pb.ListPromptsResponse(prompts=[convert.prompt_summary_pb(s) for s in page.items],
                                      next_page_token=page.next_token)

    async def SetPromptLabel(self, request: pb.SetPromptLabelRequest,
                             context: grpc.aio.ServicerContext) -> pb.SetPromptLabelResponse:
        move = await self.prompts.set_label(_actor(), request.name, request.label,
                                            request.version, request.reason)
        return pb.SetPromptLabelResponse(previous_version=move.previous_version,
                                         version=move.version, changed=move.changed)

    async def GetPromptLabelHistory(self, request: pb.GetPromptLabelHistoryRequest,
                                    context: grpc.aio.ServicerContext) -> pb.GetPromptLabelHistoryResponse:
        _actor()
        page = await self.prompts.label_history(request.name, request.label,
                                                request.page.page_size, request.page.page_token)
        return pb.GetPromptLabelHistoryResponse(
            changes=[convert.label_change_pb(c) for c in page.items],
            next_page_token=page.next_token)

    async def RenderPrompt(self, request: pb.RenderPromptRequest,
                           context: grpc.aio.ServicerContext) -> pb.RenderPromptResponse:
        _actor()
        version, label = _selected(request, "label")
        prompt, text = await self.prompts.render(
            request.name, dict(request.variables), convert.documents_from_pb(request.documents),
            version=version, label=label)
        return pb.RenderPromptResponse(text=text, name=prompt.name, version=prompt.version)
