"""Check the promise from outside: every offset of a topic landed exactly once, in one of the two
tables, and every prediction is what a fresh scoring with the version its row names gives.

Used by ``python -m streaming verify`` and by the crash tests. Pure DataFrame logic over three
inputs (the topic's records, the predictions table, the quarantine table): nothing here reads
Kafka or Delta itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from streaming.parse.events import ParseRules, valid_rows
from streaming.query.processor import JudgeCache
from streaming.score.model import LoadedModel

__all__ = ["Verdict", "check_offsets", "check_predictions", "verify"]

_KEYS = ("topic", "partition", "offset")
_EXAMPLES = 10
_RELATIVE_TOLERANCE = 1e-9


@dataclass
class Verdict:
    """What a check found. ``ok`` when nothing is missing, doubled or different.

    Attributes:
        records: Records in the topic now.
        landed: Rows of both tables for the topic.
        missing: Records in no table (with up to ten examples).
        doubled: Records in more than one row.
        not_in_topic: Rows whose record the topic no longer holds (deleted by retention
            since it was scored); reported, not a failure.
        rescored: Predictions scored again with their row's model version.
        different: Of those, predictions a fresh scoring does not reproduce.
    """

    records: int = 0
    landed: int = 0
    missing: int = 0
    doubled: int = 0
    not_in_topic: int = 0
    rescored: int = 0
    different: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.doubled == 0 and self.different == 0

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ok": self.ok}, sort_keys=True)

    def render(self) -> str:
        """The verdict for a person: one line of figures, then examples of each problem."""
        lines = [
            f"{'OK' if self.ok else 'FAILED'}: {self.records} records, {self.landed} rows landed, "
            f"{self.missing} missing, {self.doubled} doubled, {self.different} of "
            f"{self.rescored} predictions different, {self.not_in_topic} rows of records no "
            "longer in the topic"
        ]
        for problem, examples in sorted(self.examples.items()):
            if examples:
                lines.append(f"{problem}: {', '.join(examples)}")
        return "\n".join(lines)


def _landed(predictions: DataFrame, quarantine: DataFrame, topics: Sequence[str]) -> DataFrame:
    rows = predictions.select(*_KEYS).unionByName(quarantine.select(*_KEYS))
    return rows.where(F.col("topic").isin(*topics)) if topics else rows


def _examples(condition: Column) -> Column:
    coordinate = F.concat_ws("", "topic", F.lit("/"), "partition", F.lit("@"), "offset")
    return F.slice(F.array_sort(F.collect_list(F.when(condition, coordinate))), 1, _EXAMPLES)


def check_offsets(
    records: DataFrame, predictions: DataFrame, quarantine: DataFrame, topics: Sequence[str] = ()
) -> Verdict:
    """Every record of ``records`` in exactly one row of the two tables (one Spark job).

    Args:
        records: The topic's records (``topic``, ``partition``, ``offset`` at least).
        predictions: The predictions table.
        quarantine: The quarantine table.
        topics: Only rows of these topics count (default: all rows of the tables).
    """
    counts = _landed(predictions, quarantine, topics).groupBy(*_KEYS).agg(F.count("*").alias("n"))
    expected = records.select(*_KEYS).distinct().withColumn("in_topic", F.lit(True))
    joined = expected.join(counts, list(_KEYS), "full_outer")
    in_topic = F.col("in_topic").isNotNull()
    missing = in_topic & F.col("n").isNull()
    doubled = F.col("n") > 1
    gone = ~in_topic
    figures = joined.agg(
        F.count_if(in_topic).alias("records"),
        F.coalesce(F.sum("n"), F.lit(0)).alias("landed"),
        F.count_if(missing).alias("missing"),
        F.count_if(doubled).alias("doubled"),
        F.count_if(gone).alias("not_in_topic"),
        _examples(missing).alias("missing_examples"),
        _examples(doubled).alias("doubled_examples"),
    ).first()
    assert figures is not None  # a global aggregate has one row
    return Verdict(
        records=int(figures["records"]),
        landed=int(figures["landed"]),
        missing=int(figures["missing"]),
        doubled=int(figures["doubled"]),
        not_in_topic=int(figures["not_in_topic"]),
        examples={
            "missing": list(figures["missing_examples"]),
            "doubled": list(figures["doubled_examples"]),
        },
    )


def _same(stored: Column, fresh: Column) -> Column:
    tolerance = F.greatest(F.lit(1.0), F.abs(stored)) * F.lit(_RELATIVE_TOLERANCE)
    return F.coalesce(F.abs(stored - fresh) <= tolerance, stored.isNull() & fresh.isNull())


def check_predictions(
    records: DataFrame,
    predictions: DataFrame,
    model_version: Callable[[str, str], LoadedModel],
    rules: ParseRules | None = None,
    topics: Sequence[str] = (),
) -> tuple[int, int, list[str]]:
    """Score again every prediction's record with the model version its row names.

    One Spark job per model version found in the table.

    Args:
        records: The topic's records (Kafka columns).
        predictions: The predictions table.
        model_version: Loads ``(model name, version)``.
        rules: The parse rules the service ran with.
        topics: Only rows of these topics count.

    Returns:
        Predictions compared, how many differ (or whose record a fresh parse now rejects),
        and examples of those.
    """
    rows = predictions.where(F.col("topic").isin(*topics)) if topics else predictions
    versions = rows.select("model_name", "model_version").distinct().collect()
    judges = JudgeCache(rules)
    compared = differing = 0
    examples: list[str] = []
    for v in versions:
        model = model_version(str(v.model_name), str(v.model_version))
        judged = judges.for_model(model).judge(records)
        fresh = model.score(valid_rows(judged)).select(*_KEYS, F.col("prediction").alias("fresh"))
        stored = rows.where(
            (F.col("model_name") == v.model_name) & (F.col("model_version") == v.model_version)
        ).select(*_KEYS, "prediction")
        # Only rows whose record the topic still holds can be scored again.
        kept = stored.join(records.select(*_KEYS), list(_KEYS), "left_semi")
        pairs = kept.join(fresh, list(_KEYS), "left")
        bad = ~_same(F.col("prediction"), F.col("fresh"))
        figures = pairs.agg(
            F.count("*").alias("compared"),
            F.count_if(bad).alias("different"),
            _examples(bad).alias("examples"),
        ).first()
        assert figures is not None
        compared += int(figures["compared"])
        differing += int(figures["different"])
        examples.extend(figures["examples"])
    return compared, differing, examples[:_EXAMPLES]


def verify(
    records: DataFrame,
    predictions: DataFrame,
    quarantine: DataFrame,
    model_version: Callable[[str, str], LoadedModel] | None = None,
    rules: ParseRules | None = None,
    topics: Sequence[str] = (),
) -> Verdict:
    """Both checks: offsets exactly once, then (when ``model_version`` is given) predictions."""
    verdict = check_offsets(records, predictions, quarantine, topics)
    if model_version is not None:
        compared, differing, examples = check_predictions(
            records, predictions, model_version, rules, topics
        )
        verdict.rescored, verdict.different = compared, differing
        verdict.examples["different"] = examples
    return verdict
