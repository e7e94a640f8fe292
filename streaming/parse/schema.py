"""The events' expected shape, taken from the registered model's MLflow signature."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql.types import DataType, StringType, StructField, StructType, TimestampType

from streaming.errors import ModelLoadError

if TYPE_CHECKING:  # mlflow takes seconds to import; the command line must not wait for it
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec

__all__ = ["EVENT_ID", "EVENT_TIME", "EventSchema", "event_schema_from_signature"]

EVENT_ID = "event_id"
EVENT_TIME = "event_time"


@dataclass(frozen=True)
class EventSchema:
    """Model input columns (in signature order) and which of them an event must carry.

    A required column may be JSON ``null`` (a missing value the model imputes) but not absent.
    """

    features: StructType
    required: frozenset[str]

    @property
    def names(self) -> list[str]:
        return [field.name for field in self.features.fields]

    def json_schema(self) -> StructType:
        """The JSON value's schema: the features plus the optional ``event_id``/``event_time``."""
        extra = [
            StructField(EVENT_ID, StringType(), True),
            StructField(EVENT_TIME, TimestampType(), True),
        ]
        own = {field.name for field in extra}
        return StructType([f for f in self.features.fields if f.name not in own] + extra)

    def incompatibilities(self, newer: EventSchema) -> list[str]:
        """What ``newer`` needs that events shaped for this schema cannot give it.

        Returns:
            One message per problem; empty when events valid for ``self`` also suit ``newer``.
        """
        ours = {field.name: field.dataType for field in self.features.fields}
        problems = []
        for field in newer.features.fields:
            if field.name not in ours:
                if field.name in newer.required:
                    problems.append(f"needs column {field.name!r} that current events lack")
            elif ours[field.name] != field.dataType:
                problems.append(
                    f"column {field.name!r} is {field.dataType.simpleString()}, "
                    f"events carry {ours[field.name].simpleString()}"
                )
        return problems


def _spark_type(column: ColSpec) -> DataType:
    return column.type.to_spark()  # type: ignore[union-attr]


def event_schema_from_signature(signature: ModelSignature | None, model_uri: str) -> EventSchema:
    """Build the event schema from a model signature's named input columns.

    Raises:
        ModelLoadError: the model has no signature, or its inputs are not named columns.
    """
    if signature is None or signature.inputs is None:
        raise ModelLoadError(
            f"model {model_uri} has no input signature: log it with signature=infer_signature(...)"
        )
    from mlflow.types.schema import ColSpec

    inputs = signature.inputs.inputs
    if not all(isinstance(column, ColSpec) and column.name for column in inputs):
        raise ModelLoadError(
            f"model {model_uri} signature has unnamed or tensor inputs; named columns are required"
        )
    fields = [StructField(str(c.name), _spark_type(c), True) for c in inputs]
    required = frozenset(str(c.name) for c in inputs if getattr(c, "required", True))
    return EventSchema(features=StructType(fields), required=required)
