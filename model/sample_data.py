"""Deterministic, seeded sample data with the Voyage schemas: users, hotels and flights.

The product ships this so that it runs without the real dataset: the local stack and the
jobs image's default data come from here. Same seed and size, same bytes.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from model.contract import KNOWN_COMPANIES
from model.data import DATE_FORMAT, FLIGHT_TYPES
from model.exit_codes import ExitCode
from model.names import ssa_name_counts

DEFAULT_USERS = 1340
DEFAULT_SEED = 42
FIRST_NAMES_PER_SEX = 600
UNLABELLED_SHARE = 1 / 3
AGES = (21, 65)  # the real data's range, inside the contract's bounds
TRAVELS_PER_USER = 12  # Poisson mean of round trips per user
HOTEL_SHARE = 0.6  # share of round trips that include a hotel stay
FIRST_DATE = pd.Timestamp("2019-09-26")
DATE_SPAN_DAYS = 1386
AGENCIES = ("CloudFy", "FlyingDrops", "Rainbow")
# City -> rough position (km) used for distances; the nine cities of the real data.
CITIES = {
    "Aracaju (SE)": (2350, 1000),
    "Brasilia (DF)": (1300, 1500),
    "Campo Grande (MS)": (650, 2100),
    "Florianopolis (SC)": (1050, 2900),
    "Natal (RN)": (2550, 500),
    "Recife (PE)": (2600, 700),
    "Rio de Janeiro (RJ)": (1750, 2300),
    "Salvador (BH)": (2250, 1200),
    "Sao Paulo (SP)": (1400, 2400),
}
HOTELS = {
    f"Hotel {letter}": (city, price)
    for letter, city, price in zip(
        "ABCDEFGHIJK",
        [*CITIES, "Sao Paulo (SP)", "Rio de Janeiro (RJ)"],
        [313.02, 165.99, 60.39, 242.88, 214.18, 139.10, 312.83, 110.00, 263.41, 90.05, 180.00],
        strict=True,
    )
}
SURNAMES = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Braun",
    "Holsten",
    "Mcinnis",
    "Daniel",
    "Hubner",
    "Ortega",
)
FLIGHT_PRICE = {"economic": 1.0, "premium": 1.6, "firstClass": 2.2}  # multiplier of a per-km price


def _first_names(sex_index: int) -> tuple[list[str], np.ndarray]:
    """The most common SSA first names of one sex (0 female, 1 male), capitalised, with weights."""
    counts = sorted(ssa_name_counts().items(), key=lambda item: -item[1][sex_index])[:FIRST_NAMES_PER_SEX]
    names = [name.capitalize() for name, _ in counts]
    weights = np.array([pair[sex_index] for _, pair in counts], dtype=float)
    return names, weights / weights.sum()


def generate_users(n_users: int, rng: np.random.Generator) -> pd.DataFrame:
    is_female = rng.random(n_users) < 0.5
    names = np.empty(n_users, dtype=object)
    for sex_index, mask in ((0, is_female), (1, ~is_female)):
        first, weights = _first_names(sex_index)
        names[mask] = rng.choice(first, size=int(mask.sum()), p=weights)
    surnames = rng.choice(SURNAMES, size=n_users)
    gender = np.where(is_female, "female", "male").astype(object)
    gender[rng.random(n_users) < UNLABELLED_SHARE] = "none"
    return pd.DataFrame(
        {
            "code": np.arange(n_users),
            "company": rng.choice(KNOWN_COMPANIES, size=n_users),
            "name": [f"{first} {last}" for first, last in zip(names, surnames, strict=True)],
            "gender": gender,
            "age": rng.integers(AGES[0], AGES[1] + 1, size=n_users),
        }
    )


def generate_trips(users: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Round trips: two flight legs each (out and back), and a hotel stay for some of them."""
    travels = rng.poisson(TRAVELS_PER_USER, size=len(users))
    user_codes = np.repeat(users["code"].to_numpy(), travels)
    n = len(user_codes)
    travel_codes = np.arange(n)
    cities = np.array(list(CITIES))
    origin = rng.integers(0, len(cities), n)
    destination = (origin + rng.integers(1, len(cities), n)) % len(cities)
    positions = np.array(list(CITIES.values()), dtype=float)
    distance = np.linalg.norm(positions[origin] - positions[destination], axis=1) * rng.uniform(0.95, 1.05, n)
    flight_type = rng.choice(FLIGHT_TYPES, size=n, p=[0.5, 0.3, 0.2])
    price = distance * 0.95 * np.vectorize(FLIGHT_PRICE.get)(flight_type) * rng.uniform(0.9, 1.1, n)
    start = FIRST_DATE + pd.to_timedelta(rng.integers(0, DATE_SPAN_DAYS, n), unit="D")
    days = rng.integers(1, 5, n)
    back = start + pd.to_timedelta(days, unit="D")
    agency = rng.choice(AGENCIES, size=n)
    legs = {
        "travelCode": np.concatenate([travel_codes, travel_codes]),
        "userCode": np.concatenate([user_codes, user_codes]),
        "from": np.concatenate([cities[origin], cities[destination]]),
        "to": np.concatenate([cities[destination], cities[origin]]),
        "flightType": np.concatenate([flight_type, flight_type]),
        "price": np.round(np.concatenate([price, price]), 2),
        "time": np.round(np.concatenate([distance, distance]) / 700 + 0.4, 2),
        "distance": np.round(np.concatenate([distance, distance]), 2),
        "agency": np.concatenate([agency, agency]),
        "date": np.concatenate([start.strftime(DATE_FORMAT), back.strftime(DATE_FORMAT)]),
    }
    flights = pd.DataFrame(legs).sort_values(["travelCode", "date"], kind="stable")
    stays = rng.random(n) < HOTEL_SHARE
    hotel_by_city = {city: [h for h, (c, _) in HOTELS.items() if c == city] for city in CITIES}
    hotel_names = [rng.choice(hotel_by_city[cities[d]]) for d in destination[stays]]
    nightly = np.array([HOTELS[h][1] for h in hotel_names])
    hotels = pd.DataFrame(
        {
            "travelCode": travel_codes[stays],
            "userCode": user_codes[stays],
            "name": hotel_names,
            "place": cities[destination[stays]],
            "days": days[stays],
            "price": nightly,
            "total": np.round(nightly * days[stays], 2),
            "date": start[stays].strftime(DATE_FORMAT),
        }
    )
    return hotels, flights


def write_sample(
    out_dir: Path, n_users: int = DEFAULT_USERS, seed: int = DEFAULT_SEED, trips: bool = True
) -> None:
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    users = generate_users(n_users, rng)
    users.to_csv(out_dir / "users.csv", index=False)
    if trips:
        hotels, flights = generate_trips(users, rng)
        hotels.to_csv(out_dir / "hotels.csv", index=False)
        flights.to_csv(out_dir / "flights.csv", index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.sample_data", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="directory to write users/hotels/flights.csv")
    parser.add_argument(
        "--users", type=int, default=DEFAULT_USERS, help="number of users (default %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default %(default)s)")
    parser.add_argument(
        "--users-only", action="store_true", help="write users.csv only (large scoring files)"
    )
    args = parser.parse_args(argv)
    if args.users < 1:
        parser.error("--users must be at least 1")
    write_sample(args.out, args.users, args.seed, trips=not args.users_only)
    print(f"wrote sample data for {args.users} users to {args.out}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
