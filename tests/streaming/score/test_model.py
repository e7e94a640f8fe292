"""load_model: a model is checked before it serves, and a failure says what the model raised."""

from __future__ import annotations

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from streaming.errors import ModelLoadError
from streaming.score.identity import ModelIdentity
from streaming.score.model import load_model
from tests.streaming.conftest import FEATURES, RaisingModel, Registry, event, training_frame


def _identity(registry: Registry, version: str) -> ModelIdentity:
    return ModelIdentity(
        uri=f"models:/{registry.name}/{version}", name=registry.name, version=version, run_id=None
    )


def test_a_version_whose_predict_raises_is_refused_with_the_models_own_error(
    spark: SparkSession, registry: Registry
) -> None:
    example = pd.DataFrame([event(i) for i in range(3)])[FEATURES]
    version = registry.register_pyfunc(RaisingModel(), example, alias=None)

    with pytest.raises(ModelLoadError) as raised:
        load_model(spark, f"models:/{registry.name}/{version}", _identity(registry, version))

    message = str(raised.value)
    assert message == (
        f"model models:/{registry.name}/{version} failed its smoke prediction: "
        "ValueError: this version cannot score anything"
    )


def test_a_model_logged_with_a_profile_loads_it(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
) -> None:
    version = registry.register_spark_with_profile(base_model, training_frame(spark))

    loaded = load_model(spark, f"models:/{registry.name}/{version}", _identity(registry, version))

    assert loaded.profile is not None
    assert loaded.profile.categories()["room_type"] == {
        "Entire home/apt",
        "Private room",
        "Shared room",
    }
    assert loaded.profile.ranges() == {"accommodates": (1.0, 8.0), "bedrooms": (0.0, 2.0)}
    assert loaded.profile.numeric["bedrooms"].null_rate > 0
