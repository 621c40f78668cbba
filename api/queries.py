"""Read-only GraphQL fields."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.auth import READ_SCOPES
from catalogue import Feature, external_features
from core.errors import RESOURCE_NOT_AVAILABLE, AccessDenied

__all__ = ["Query"]


@strawberry.type(name="UserCore", description="Core representation of a GitLab user.")
class UserType:
    id: strawberry.ID
    username: str
    admin: bool


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
    principal = info.context.principal
    if principal is None or not principal.scopes & READ_SCOPES:
        raise AccessDenied(RESOURCE_NOT_AVAILABLE)
    return principal


@strawberry.type
class Query:
    @strawberry.field(description="The currently authenticated user.")
    def current_user(self, info: Info) -> UserType | None:
        principal = info.context.principal
        if principal is None:
            return None
        return UserType(id=strawberry.ID(principal.gid), username=principal.username, admin=principal.admin)

    @strawberry.field(description="The AI features of the catalogue and whether the caller may use them.")
    def ai_features(self, info: Info) -> list[AiFeatureType]:
        _caller(info)
        return [AiFeatureType.from_model(feature, available=True) for feature in external_features()]
