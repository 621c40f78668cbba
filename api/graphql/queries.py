"""Read-only GraphQL fields."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.auth import READ_SCOPES, require_scopes
from api.graphql.namespaces import (
    CurrentUserType,
    GroupType,
    ProjectType,
    ai_features_about,
    current_user,
    find_group,
    find_project,
)
from catalogue import Feature
from subscriptions.scalars import AiModelID

__all__ = ["Query"]


@strawberry.type(name="AiFeature", description="An AI feature of the catalogue, as the caller may use it.")
class AiFeatureType:
    name: str
    title: str
    maturity: str
    available: bool

    @classmethod
    def from_model(cls, feature: Feature, *, available: bool) -> AiFeatureType:
        return cls(name=feature.graphql_name, title=feature.title, maturity=feature.maturity, available=available)


def _caller(info: Info):  # noqa: ANN202
    return require_scopes(info.context.principal, READ_SCOPES)


@strawberry.type
class Query:
    @strawberry.field(description="The currently authenticated user.")
    async def current_user(self, info: Info) -> CurrentUserType | None:
        return await current_user(info)

    @strawberry.field(description="The AI features of the catalogue and whether the caller may use them "
                      "(about `resourceId` when given).")
    async def ai_features(self, info: Info, resource_id: AiModelID | None = None) -> list[AiFeatureType]:
        _caller(info)
        return await ai_features_about(info, resource_id)

    @strawberry.field(description="Find a group by its full path; null when it does not exist or is not visible.")
    async def group(self, info: Info, full_path: strawberry.ID) -> GroupType | None:
        _caller(info)
        return await find_group(info, str(full_path))

    @strawberry.field(description="Find a project by its full path; null when it does not exist or is not visible.")
    async def project(self, info: Info, full_path: strawberry.ID) -> ProjectType | None:
        _caller(info)
        return await find_project(info, str(full_path))
