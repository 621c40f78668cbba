"""GraphQL input types generated from the catalogue: one `Ai<Feature>Input` per external feature and the
`AiActionInput` that holds one optional field per feature (GitLab's `aiAction` arguments).

A feature field's `kind` picks its GraphQL type: `string` → String, `boolean` → Boolean, `current_file` →
GitLab's `AiCurrentFileInput`, `additional_context` → `[AiAdditionalContextInput!]`. `field_value` turns an
object-typed argument into the plain JSON the job carries, within the field's size limit.

Each of these input types builds its value with a converter of its own (`InputConverter`, strawberry's
`from_input` hook), planned once per type: strawberry's generic conversion resolved every field's type and
tested it against each kind of type on every request, for every one of `AiActionInput`'s fields (one per
feature, mostly null), ~15 % of the web process's instructions per `aiAction`. The value built is the same.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, Optional

import strawberry
from strawberry.relay import GlobalID
from strawberry.scalars import JSON, is_scalar
from strawberry.schema.config import StrawberryConfig
from strawberry.types.arguments import InputContext
from strawberry.types.base import StrawberryList, StrawberryMaybe, StrawberryOptional, get_object_definition
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition

from catalogue import Feature, InputField, external_features
from core.errors import InvalidInput
from subscriptions.scalars import AiConversationThreadID, AiModelID, ProjectID

__all__ = [
    "AiActionInputs",
    "AiAdditionalContextCategory",
    "AiAdditionalContextInput",
    "AiConversationsThreadsConversationType",
    "AiCurrentFileInput",
    "InputConverter",
    "MAX_ADDITIONAL_CONTEXT_ITEMS",
    "build_action_input",
    "field_value",
]

MAX_ADDITIONAL_CONTEXT_ITEMS = 100


_Convert = Callable[[Any], object]


class InputConverter:
    """Builds an input type's value from graphql-core's coerced input (keyed by GraphQL field names), as
    strawberry's `convert_argument` does: each field present converted (null stays None, lists item by item,
    nested input types by their own converter, scalars and enums as graphql-core coerced them), the fields
    without a default None unless given, then the class called with its fields' Python names. The plan (per
    field: its Python name and how to convert its value) is made at the first conversion, when the schema's
    name converter and scalars are known. Set on a type with `InputConverter.install(cls)`; it plans the
    types this module builds (scalar, enum, list, optional and input-object fields) and refuses others."""

    __slots__ = ("_cls", "_config", "_plan", "_unset")

    def __init__(self, cls: type) -> None:
        self._cls = cls
        self._config: StrawberryConfig | None = None
        self._plan: dict[str, tuple[str, _Convert]] = {}
        self._unset: dict[str, None] = {}

    @classmethod
    def install(cls, input_type: type) -> type:
        get_object_definition(input_type, strict=True).from_input = cls(input_type)
        return input_type

    def __call__(self, cls: type, value: Mapping[str, Any], context: InputContext) -> object:
        if context.config is not self._config:
            self._planned(context)
        kwargs: dict[str, object] = dict(self._unset)
        plan = self._plan
        for name, item in value.items():
            python_name, convert = plan[name]
            kwargs[python_name] = None if item is None else convert(item)
        return cls(**kwargs)

    def _planned(self, context: InputContext) -> None:
        definition = get_object_definition(self._cls, strict=True)
        self._plan = {
            context.config.name_converter.from_field(field): (field.python_name, _converter_of(field.type, context))
            for field in definition.fields
        }
        self._unset = {
            field.python_name: None for field in definition.fields
            if field.default_value is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        }
        self._config = context.config


def _leaf(value: object) -> object:
    return value


def _converter_of(type_: Any, context: InputContext) -> _Convert:
    """How to convert a non-null value of `type_` (see `InputConverter`)."""
    if isinstance(type_, StrawberryOptional) and not isinstance(type_, StrawberryMaybe):
        inner = _converter_of(type_.of_type, context)
        return lambda value: None if value is None else inner(value)
    if isinstance(type_, StrawberryList):
        item = _converter_of(type_.of_type, context)
        if item is _leaf:
            return list  # a copy, as strawberry makes: graphql-core gives every request the same default
        return lambda values: [None if value is None else item(value) for value in values]
    leaf = is_scalar(type_, context.scalar_registry) or has_enum_definition(type_) or isinstance(type_, StrawberryEnumDefinition)
    if leaf and type_ is not GlobalID:
        return _leaf  # graphql-core's coerced value, as strawberry keeps it
    definition = get_object_definition(type_)
    if definition is None or not definition.is_input or not isinstance(definition.from_input, InputConverter):
        raise TypeError(f"{type_!r}: InputConverter plans scalars, enums, lists and input types with a converter")
    build, nested = definition.from_input, InputContext(None, context.config, context.scalar_registry, ())
    return lambda value: build(type_, value, nested)


@strawberry.enum(name="AiConversationsThreadsConversationType", description="Conversation type of the thread.")
class AiConversationsThreadsConversationType(Enum):
    DUO_CHAT = "duo_chat"
    DUO_CHAT_LEGACY = "duo_chat_legacy"
    DUO_CODE_REVIEW = "duo_code_review"
    DUO_QUICK_CHAT = "duo_quick_chat"


@strawberry.enum(name="AiAdditionalContextCategory", description="The category of the additional context.")
class AiAdditionalContextCategory(Enum):
    FILE = "file"
    SNIPPET = "snippet"
    MERGE_REQUEST = "merge_request"
    ISSUE = "issue"
    DEPENDENCY = "dependency"
    LOCAL_GIT = "local_git"
    TERMINAL = "terminal"
    REPOSITORY = "repository"
    DIRECTORY = "directory"
    AGENT_USER_ENVIRONMENT = "agent_user_environment"


@InputConverter.install
@strawberry.input(name="AiCurrentFileInput", description="Information about the file open in the editor.")
class AiCurrentFileInput:
    file_name: str = strawberry.field(description="File name.")
    selected_text: str = strawberry.field(description="Selected text.")
    content_above_cursor: str | None = strawberry.field(default=None, description="Content above cursor.")
    content_below_cursor: str | None = strawberry.field(default=None, description="Content below cursor.")


@InputConverter.install
@strawberry.input(name="AiAdditionalContextInput", description="Additional context for the chat.")
class AiAdditionalContextInput:
    category: AiAdditionalContextCategory = strawberry.field(description="Category of the additional context.")
    id: str = strawberry.field(description="ID of the additional context.")
    content: str = strawberry.field(description="Content of the additional context.")
    metadata: JSON | None = strawberry.field(default=None, description="Metadata of the additional context.")


_TYPES: dict[str, Any] = {
    "string": str,
    "boolean": bool,
    "current_file": AiCurrentFileInput,
    "additional_context": list[AiAdditionalContextInput],
}


def _too_long(argument: str, limit: int) -> InvalidInput:
    return InvalidInput(argument, f"is too long (maximum is {limit} characters)")


def field_value(field: InputField, value: Any, argument: str) -> object:
    """The JSON the job carries for a non-string argument; InvalidInput past the field's size limit."""
    if field.kind == "current_file":
        data = {key: getattr(value, key) for key in ("file_name", "selected_text", "content_above_cursor", "content_below_cursor")}
        if sum(len(text or "") for text in data.values()) > field.max_length:
            raise _too_long(argument, field.max_length)
        return data
    if field.kind == "additional_context":
        if len(value) > MAX_ADDITIONAL_CONTEXT_ITEMS:
            raise InvalidInput(argument, f"has too many items (maximum is {MAX_ADDITIONAL_CONTEXT_ITEMS})")
        items = []
        for item in value:
            if item.metadata is not None and not isinstance(item.metadata, dict):
                raise InvalidInput(f"{argument}.metadata", "must be an object")
            items.append({"category": item.category.value, "id": item.id, "content": item.content, "metadata": item.metadata})
        if len(json.dumps(items)) > field.max_length:
            raise _too_long(argument, field.max_length)
        return items
    return bool(value) if field.kind == "boolean" else value


def _pascal(key: str) -> str:
    return "".join(part.title() for part in key.split("_"))


def _feature_input(feature: Feature) -> type:
    annotations: dict[str, object] = {}
    namespace: dict[str, object] = {}
    if feature.resource_required:
        annotations["resource_id"] = AiModelID
        namespace["resource_id"] = strawberry.field(description="Global ID of the resource to mutate.")
    else:
        annotations["resource_id"] = Optional[AiModelID]  # noqa: UP045 - evaluated at runtime by strawberry
        namespace["resource_id"] = strawberry.field(default=None, description="Global ID of the resource.")
    for field in feature.fields:
        kind = _TYPES[field.kind]
        annotations[field.name] = kind if field.required else Optional[kind]  # noqa: UP045
        namespace[field.name] = (
            strawberry.field(description=field.description or None) if field.required
            else strawberry.field(description=field.description or None, default=None)
        )
    namespace["__annotations__"] = annotations
    cls = type(f"Ai{_pascal(feature.key)}Input", (), namespace)
    return InputConverter.install(strawberry.input(cls, name=f"Ai{_pascal(feature.key)}Input", description=feature.description))


@dataclasses.dataclass(frozen=True)
class AiActionInputs:
    """The generated `AiActionInput` type and, per feature, the attribute that holds its input."""

    type: type
    attributes: dict[str, Feature]


def build_action_input() -> AiActionInputs:
    annotations: dict[str, object] = {}
    namespace: dict[str, object] = {}
    attributes: dict[str, Feature] = {}
    for feature in external_features():
        annotations[feature.key] = Optional[_feature_input(feature)]  # noqa: UP045
        namespace[feature.key] = strawberry.field(default=None, name=feature.graphql_name, description=feature.title)
        attributes[feature.key] = feature
    extra: dict[str, tuple[object, str]] = {
        "client_subscription_id": (str, "Client generated ID that can be subscribed to, to receive a response for the mutation."),
        "client_mutation_id": (str, "A unique identifier for the client performing the mutation."),
        "platform_origin": (str, "Specifies the origin platform of the request."),
        "project_id": (ProjectID, "Global ID of the project the user is acting on."),
        "conversation_type": (AiConversationsThreadsConversationType, "Conversation type of the thread."),
        "thread_id": (AiConversationThreadID, "Global Id of the existing thread to continue the conversation."),
    }
    for name, (kind, description) in extra.items():
        annotations[name] = Optional[kind]  # noqa: UP045
        namespace[name] = strawberry.field(default=None, description=description)
    namespace["__annotations__"] = annotations
    cls = type("AiActionInput", (), namespace)
    input_type = strawberry.input(cls, name="AiActionInput", description="Autogenerated input type of AiAction")
    return AiActionInputs(InputConverter.install(input_type), attributes)
