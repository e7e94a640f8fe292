"""promote: champion moves only to a challenger that is better on the pinned holdout."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession

from infra.tracking import TrackingStore
from models.aliases import CHALLENGER, CHAMPION
from models.errors import RegistryError, SettingsError
from models.pipeline import RegressorParams
from models.promotion import PromoteSettings, decide_promotion, promote, split_caveat
from models.training import TrainSettings, train
from tests.models.support import small_spec

STUMP = RegressorParams(num_trees=1, max_depth=1)
FOREST = RegressorParams(num_trees=10, max_depth=6)


def test_decision_needs_a_strictly_lower_rmse_by_the_margin() -> None:
    assert decide_promotion(9.0, 10.0, 0.0)[0]
    assert decide_promotion(9.0, 10.0, 0.1)[0]
    assert not decide_promotion(9.5, 10.0, 0.1)[0]
    assert not decide_promotion(10.0, 10.0, 0.0)[0]
    assert not decide_promotion(11.0, 10.0, 0.0)[0]
    promoted, reason = decide_promotion(8.0, 10.0, 0.05)
    assert promoted
    assert reason == (
        "challenger is better: challenger RMSE 8.0000 vs champion 10.0000 "
        "(+20.00%, needed > 0 and >= 5.00%)"
    )


def test_caveat_when_the_champion_was_split_differently() -> None:
    spec = small_spec("/t")

    assert split_caveat({"split_seed": "42", "holdout_fraction": "0.2"}, spec) is None
    assert split_caveat({"split_seed": "7", "holdout_fraction": "0.2"}, spec) == (
        "the champion was trained with split_seed=7, holdout_fraction=0.2 (this holdout: 42, "
        "0.2): some holdout rows may be in its training data"
    )


def test_margin_must_be_a_fraction() -> None:
    with pytest.raises(SettingsError, match="--min-improvement"):
        PromoteSettings(min_improvement=1.5)


def test_promote_moves_champion_to_a_better_challenger_only(
    spark: SparkSession, tracking_store: TrackingStore, listings_table: str, model_name: str
) -> None:
    client = MlflowClient(tracking_store.tracking_uri, tracking_store.tracking_uri)

    def aliases() -> dict[str, str]:
        return {
            alias: str(version)
            for alias, version in client.get_registered_model(model_name).aliases.items()
        }

    def train_version(regressor: RegressorParams) -> None:
        settings = TrainSettings(
            spec=small_spec(listings_table, regressor=regressor), model_name=model_name
        )
        train(spark, tracking_store, settings)

    train_version(STUMP)  # version 1: a weak first champion
    train_version(FOREST)  # version 2: a much better challenger
    assert aliases() == {CHAMPION: "1", CHALLENGER: "2"}

    # Better, but not by the 90% asked for: the champion stays.
    demanding = promote(spark, tracking_store, PromoteSettings(model_name, min_improvement=0.9))
    assert not demanding.promoted
    assert aliases()[CHAMPION] == "1"

    decision = promote(spark, tracking_store, PromoteSettings(model_name))

    assert decision.promoted
    assert (decision.challenger_version, decision.champion_version) == ("2", "1")
    assert decision.caveat is None
    assert decision.challenger_metrics["rmse"] < decision.champion_metrics["rmse"]
    # Same pinned holdout as the margin check above: the same numbers.
    assert decision.challenger_metrics == demanding.challenger_metrics
    assert aliases() == {CHAMPION: "2", CHALLENGER: "2"}
    run = client.get_run(decision.run_id)
    assert run.data.tags["promotion.decision"] == "promoted"
    assert run.data.params["challenger_version"] == "2"
    assert run.data.params["data_version"] == "0"
    assert run.data.metrics["challenger_rmse"] == decision.challenger_metrics["rmse"]
    assert run.data.metrics["champion_rmse"] == decision.champion_metrics["rmse"]

    train_version(STUMP)  # version 3: a worse challenger
    decision = promote(spark, tracking_store, PromoteSettings(model_name))

    assert not decision.promoted
    assert decision.challenger_metrics["rmse"] > decision.champion_metrics["rmse"]
    assert aliases() == {CHAMPION: "2", CHALLENGER: "3"}
    assert client.get_run(decision.run_id).data.tags["promotion.decision"] == "kept"


def test_promote_without_a_challenger_names_the_model(
    spark: SparkSession, tracking_store: TrackingStore
) -> None:
    with pytest.raises(RegistryError, match="registered model 'no-such-model' has no 'challenger'"):
        promote(spark, tracking_store, PromoteSettings("no-such-model"))
