"""The listings data set: its columns and a synthetic generator. Plain data (numpy, pandas).

The columns follow the San Francisco Airbnb listings the seed trains on. This module is the one
place that names the features and the label: ``models`` trains on them, and ``streaming``'s
producer sends synthetic listings as events (``produce --synthetic``).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORICAL_COLUMNS",
    "FEATURE_COLUMNS",
    "ID_COLUMN",
    "LABEL_COLUMN",
    "NUMERIC_COLUMNS",
    "generate_listings",
]

ID_COLUMN: Final = "id"
LABEL_COLUMN: Final = "price"
FEATURE_COLUMNS: Final[tuple[str, ...]] = (
    "host_is_superhost",
    "cancellation_policy",
    "instant_bookable",
    "host_total_listings_count",
    "neighbourhood_cleansed",
    "latitude",
    "longitude",
    "property_type",
    "room_type",
    "accommodates",
    "bathrooms",
    "bedrooms",
    "beds",
    "bed_type",
    "minimum_nights",
    "number_of_reviews",
    "review_scores_rating",
    "review_scores_accuracy",
    "review_scores_cleanliness",
    "review_scores_checkin",
    "review_scores_communication",
    "review_scores_location",
    "review_scores_value",
)
CATEGORICAL_COLUMNS: Final[tuple[str, ...]] = (
    "host_is_superhost",
    "cancellation_policy",
    "instant_bookable",
    "neighbourhood_cleansed",
    "property_type",
    "room_type",
    "bed_type",
)
NUMERIC_COLUMNS: Final[tuple[str, ...]] = tuple(
    c for c in FEATURE_COLUMNS if c not in CATEGORICAL_COLUMNS
)

# name: (latitude, longitude, price factor, share of listings)
_NEIGHBOURHOODS: Final[dict[str, tuple[float, float, float, float]]] = {
    "Mission": (37.7599, -122.4148, 1.00, 9),
    "Western Addition": (37.7813, -122.4360, 1.00, 7),
    "South of Market": (37.7785, -122.4056, 1.10, 6),
    "Downtown/Civic Center": (37.7840, -122.4140, 0.95, 6),
    "Castro/Upper Market": (37.7609, -122.4350, 1.10, 6),
    "Haight Ashbury": (37.7692, -122.4481, 1.00, 5),
    "Bernal Heights": (37.7389, -122.4152, 0.95, 5),
    "Noe Valley": (37.7502, -122.4337, 1.10, 5),
    "Outer Sunset": (37.7550, -122.4950, 0.80, 5),
    "Nob Hill": (37.7930, -122.4161, 1.15, 4),
    "Marina": (37.8037, -122.4368, 1.30, 4),
    "Pacific Heights": (37.7925, -122.4382, 1.35, 4),
    "Inner Richmond": (37.7800, -122.4640, 0.90, 4),
    "Potrero Hill": (37.7605, -122.4009, 1.05, 3),
    "Bayview": (37.7298, -122.3920, 0.75, 3),
    "Outer Richmond": (37.7778, -122.4940, 0.85, 3),
    "Russian Hill": (37.8011, -122.4194, 1.35, 3),
    "North Beach": (37.8061, -122.4103, 1.20, 3),
    "Financial District": (37.7946, -122.3999, 1.25, 3),
    "Inner Sunset": (37.7602, -122.4680, 0.90, 3),
    "Excelsior": (37.7244, -122.4272, 0.70, 3),
    "Chinatown": (37.7941, -122.4078, 0.95, 2),
    "Outer Mission": (37.7230, -122.4470, 0.70, 2),
    "Visitacion Valley": (37.7133, -122.4040, 0.65, 1),
    "Glen Park": (37.7340, -122.4337, 0.95, 1),
    "Twin Peaks": (37.7544, -122.4477, 1.10, 1),
    "Presidio Heights": (37.7886, -122.4525, 1.40, 1),
    "Seacliff": (37.7856, -122.4895, 1.60, 0.5),
}
# name: (price factor, share of listings)
_PROPERTY_TYPES: Final[dict[str, tuple[float, float]]] = {
    "Apartment": (1.00, 45),
    "House": (1.05, 20),
    "Condominium": (1.05, 10),
    "Guest suite": (0.90, 6),
    "Boutique hotel": (1.20, 4),
    "Serviced apartment": (1.15, 3),
    "Townhouse": (1.05, 3),
    "Loft": (1.10, 2),
    "Guesthouse": (0.90, 2),
    "Hotel": (1.10, 2),
    "Hostel": (0.60, 1.5),
    "Bed and breakfast": (0.95, 1.5),
}
_ROOM_BASE_PRICE: Final[dict[str, float]] = {
    "Entire home/apt": 150.0,
    "Private room": 80.0,
    "Shared room": 45.0,
    "Hotel room": 160.0,
}
_CANCELLATION: Final[dict[str, float]] = {
    "strict_14_with_grace_period": 50,
    "moderate": 25,
    "flexible": 20,
    "super_strict_30": 4,
    "super_strict_60": 1,
}
_BED_TYPES: Final[dict[str, float]] = {
    "Real Bed": 96,
    "Futon": 1.5,
    "Pull-out Sofa": 1.5,
    "Couch": 0.5,
    "Airbed": 0.5,
}
_REVIEW_SUB_SCORES: Final = tuple(
    c for c in NUMERIC_COLUMNS if c.startswith("review_scores_") and c != "review_scores_rating"
)


def _pick(rng: np.random.Generator, weights: dict[str, float], n: int) -> np.ndarray:
    names = list(weights)
    p = np.array([weights[k] for k in names], dtype=float)
    return rng.choice(np.array(names, dtype=object), size=n, p=p / p.sum())


def _pick_factored(
    rng: np.random.Generator, table: dict[str, tuple[float, float]], n: int
) -> tuple[np.ndarray, np.ndarray]:
    names = rng.choice(
        np.array(list(table), dtype=object),
        size=n,
        p=np.array([v[1] for v in table.values()]) / sum(v[1] for v in table.values()),
    )
    return names, np.array([table[k][0] for k in names], dtype=float)


def generate_listings(n: int, seed: int = 42, start_id: int = 1) -> pd.DataFrame:
    """Generate ``n`` synthetic San Francisco listings with a believable price.

    Price grows with room type, size, neighbourhood, reviews and superhost status, with
    log-normal noise. Review scores are missing when a listing has no reviews; a few other
    values are missing at random, as in the real data.

    Args:
        n: Number of rows.
        seed: Seed of the random generator; the same seed gives the same rows.
        start_id: Id of the first row (ids are consecutive), so that batches can be appended.

    Returns:
        A frame with ``id``, the :data:`FEATURE_COLUMNS` (strings and floats, ``None``/``NaN``
        where missing) and ``price``.

    Raises:
        ValueError: ``n`` is negative.
    """
    if n < 0:
        raise ValueError(f"cannot generate {n} rows")
    rng = np.random.default_rng(seed)

    neighbourhood = _pick(rng, {k: v[3] for k, v in _NEIGHBOURHOODS.items()}, n)
    centre = np.array([_NEIGHBOURHOODS[k][:3] for k in neighbourhood], dtype=float).reshape(n, 3)
    latitude = np.round(centre[:, 0] + rng.normal(0, 0.005, n), 5)
    longitude = np.round(centre[:, 1] + rng.normal(0, 0.006, n), 5)
    place_factor = centre[:, 2]

    property_type, property_factor = _pick_factored(rng, _PROPERTY_TYPES, n)
    room_type = _pick(
        rng, {"Entire home/apt": 58, "Private room": 36, "Shared room": 3, "Hotel room": 3}, n
    )
    hotel = np.isin(property_type, ["Hotel", "Boutique hotel"])
    room_type = np.where(
        hotel, np.where(rng.random(n) < 0.7, "Hotel room", "Private room"), room_type
    )
    hostel = property_type == "Hostel"
    room_type = np.where(
        hostel, np.where(rng.random(n) < 0.6, "Shared room", "Private room"), room_type
    )
    entire = room_type == "Entire home/apt"

    accommodates = np.where(
        entire,
        rng.choice(
            np.arange(1, 11), n, p=[0.04, 0.3, 0.14, 0.22, 0.08, 0.12, 0.03, 0.04, 0.01, 0.02]
        ),
        rng.choice([1, 2, 3, 4], n, p=[0.35, 0.55, 0.06, 0.04]),
    ).astype(float)
    bedrooms = np.where(
        entire, np.clip(np.round(accommodates / 2 + rng.normal(0, 0.5, n)), 0, 6), 1.0
    )
    beds = np.clip(np.round(accommodates * 0.7 + rng.normal(0, 0.5, n)), 1, 12)
    bathrooms = np.where(
        entire,
        np.clip(np.round((1 + 0.4 * (bedrooms - 1) + rng.normal(0, 0.3, n)) * 2) / 2, 0.5, 5),
        rng.choice([1.0, 1.5, 2.0, 3.0], n, p=[0.6, 0.15, 0.15, 0.1]),
    )
    bed_type = _pick(rng, _BED_TYPES, n)

    superhost = rng.random(n) < 0.35
    instant_bookable = np.where(rng.random(n) < 0.4, "t", "f")
    cancellation_policy = _pick(rng, _CANCELLATION, n)
    host_listings = np.clip(np.round(rng.lognormal(0.3, 1.2, n)), 1, 800)
    host_listings = np.where(hotel, np.clip(host_listings * 20, 20, 800), host_listings)
    minimum_nights = rng.choice(
        [1, 2, 3, 4, 5, 7, 30, 60], n, p=[0.25, 0.25, 0.15, 0.05, 0.04, 0.04, 0.2, 0.02]
    ).astype(float)
    number_of_reviews = np.where(
        rng.random(n) < 0.12, 0, rng.negative_binomial(1, 0.02, n) + 1
    ).astype(float)
    rating = np.clip(np.round(100 - rng.gamma(1.5, 4.0, n) + 2 * superhost), 20, 100)
    sub_scores = {
        name: np.clip(np.round(rating / 10 + rng.normal(0, 0.4, n)), 2, 10)
        for name in _REVIEW_SUB_SCORES
    }

    price = (
        np.array([_ROOM_BASE_PRICE[r] for r in room_type])
        * place_factor
        * property_factor
        * np.clip(1 + 0.15 * (accommodates - 2), 0.8, None)
        + 35 * np.clip(bedrooms - 1, 0, None)
        + 25 * np.clip(bathrooms - 1, 0, None)
    )
    price = price * (1 + 0.03 * (rating - 94) / 3) * np.where(superhost, 1.06, 1.0)
    price = price * np.where(minimum_nights >= 30, 0.8, 1.0)
    price = np.clip(np.round(price * rng.lognormal(0, 0.22, n)), 10, 3000)

    def missing(share: float) -> np.ndarray:
        return rng.random(n) < share

    no_reviews = number_of_reviews == 0
    frame = pd.DataFrame(
        {
            ID_COLUMN: np.arange(start_id, start_id + n, dtype="int64"),
            "host_is_superhost": np.where(superhost, "t", "f").astype(object),
            "cancellation_policy": cancellation_policy,
            "instant_bookable": instant_bookable.astype(object),
            "host_total_listings_count": np.where(missing(0.002), np.nan, host_listings),
            "neighbourhood_cleansed": neighbourhood,
            "latitude": latitude,
            "longitude": longitude,
            "property_type": property_type,
            "room_type": room_type.astype(object),
            "accommodates": accommodates,
            "bathrooms": np.where(missing(0.005), np.nan, bathrooms),
            "bedrooms": np.where(missing(0.003), np.nan, bedrooms),
            "beds": np.where(missing(0.003), np.nan, beds),
            "bed_type": bed_type,
            "minimum_nights": minimum_nights,
            "number_of_reviews": number_of_reviews,
            "review_scores_rating": np.where(no_reviews | missing(0.02), np.nan, rating),
            **{
                name: np.where(no_reviews | missing(0.02), np.nan, values)
                for name, values in sub_scores.items()
            },
            LABEL_COLUMN: price,
        }
    )
    frame.loc[missing(0.002), "host_is_superhost"] = None
    return frame[[ID_COLUMN, *FEATURE_COLUMNS, LABEL_COLUMN]]
