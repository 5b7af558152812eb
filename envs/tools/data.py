"""The simulated world's data: cities, currencies, units, a small database, catalogue, hotels.

Everything is fixed or drawn from `random.Random` seeded by strings (which Python hashes
with SHA-512, so values are identical across runs and machines): the weather in a city on
a date, the flights on a route, a hotel's nightly price. No network, no clock.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import random
from dataclasses import dataclass
from functools import cache
from typing import Any


def seeded(*parts: Any) -> random.Random:
    """A generator determined by `parts` alone."""
    return random.Random("|".join(str(p) for p in parts))


def code(*parts: Any, length: int = 6) -> str:
    """A deterministic upper-case code (confirmation numbers, event ids)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


@dataclass(frozen=True)
class City:
    name: str
    lat: float
    lon: float
    currency: str
    mean_c: float  # yearly mean temperature
    swing_c: float  # seasonal half-range
    wet: float  # chance of rain on a day
    cost: float  # price level of hotels


CITY_LIST = (
    City("Paris", 48.8566, 2.3522, "EUR", 12.5, 8.0, 0.35, 1.3),
    City("London", 51.5074, -0.1278, "GBP", 11.5, 7.0, 0.45, 1.4),
    City("New York", 40.7128, -74.0060, "USD", 13.0, 12.0, 0.3, 1.5),
    City("Tokyo", 35.6762, 139.6503, "JPY", 16.0, 10.0, 0.35, 1.2),
    City("Sydney", -33.8688, 151.2093, "AUD", 18.5, 5.0, 0.3, 1.2),
    City("Berlin", 52.5200, 13.4050, "EUR", 10.0, 10.0, 0.3, 1.0),
    City("Madrid", 40.4168, -3.7038, "EUR", 15.0, 10.0, 0.15, 0.9),
    City("Rome", 41.9028, 12.4964, "EUR", 16.0, 9.0, 0.2, 1.1),
    City("Toronto", 43.6532, -79.3832, "CAD", 9.0, 14.0, 0.3, 1.1),
    City("Singapore", 1.3521, 103.8198, "SGD", 27.5, 1.0, 0.5, 1.3),
    City("Dubai", 25.2048, 55.2708, "AED", 28.0, 8.0, 0.05, 1.2),
    City("Mumbai", 19.0760, 72.8777, "INR", 27.5, 3.0, 0.35, 0.6),
    City("Sao Paulo", -23.5505, -46.6333, "BRL", 20.0, 4.0, 0.4, 0.7),
    City("Mexico City", 19.4326, -99.1332, "MXN", 17.0, 3.0, 0.3, 0.6),
    City("Seoul", 37.5665, 126.9780, "KRW", 13.0, 14.0, 0.3, 0.9),
    City("Zurich", 47.3769, 8.5417, "CHF", 9.5, 9.0, 0.4, 1.6),
)
CITIES = {city.name: city for city in CITY_LIST}
CITY_NAMES = tuple(CITIES)
CITY_CODES = {city.name: city.name.replace(" ", "")[:3].upper() for city in CITY_LIST}

# Units of currency per US dollar.
USD_RATES = {
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "JPY": 151.2,
    "AUD": 1.52,
    "CAD": 1.36,
    "CHF": 0.88,
    "SGD": 1.35,
    "AED": 3.6725,
    "INR": 83.3,
    "BRL": 5.05,
    "MXN": 17.1,
    "KRW": 1350.0,
    "CNY": 7.24,
}
CURRENCIES = tuple(USD_RATES)


def exchange_rate(base: str, target: str) -> float:
    """Units of `target` per unit of `base`, to 6 decimals (the figure conversions use)."""
    return round(USD_RATES[target] / USD_RATES[base], 6)


# Unit -> (dimension, size in the dimension's base unit); temperatures convert apart.
UNITS: dict[str, tuple[str, float]] = {
    "m": ("length", 1.0),
    "km": ("length", 1000.0),
    "cm": ("length", 0.01),
    "mi": ("length", 1609.344),
    "ft": ("length", 0.3048),
    "in": ("length", 0.0254),
    "g": ("mass", 1.0),
    "kg": ("mass", 1000.0),
    "lb": ("mass", 453.59237),
    "oz": ("mass", 28.349523125),
    "ml": ("volume", 1.0),
    "l": ("volume", 1000.0),
    "gal": ("volume", 3785.411784),
    "cup": ("volume", 236.5882365),
    "celsius": ("temperature", 1.0),
    "fahrenheit": ("temperature", 1.0),
    "kelvin": ("temperature", 1.0),
}


def units_of(dimension: str) -> list[str]:
    return [unit for unit, (dim, _) in UNITS.items() if dim == dimension]


def convert_unit(value: float, from_unit: str, to_unit: str) -> float:
    """`value` in `from_unit` expressed in `to_unit` (same dimension), to 4 decimals."""
    dimension, size = UNITS[from_unit]
    if dimension == "temperature":
        celsius = {
            "celsius": value,
            "fahrenheit": (value - 32) * 5 / 9,
            "kelvin": value - 273.15,
        }[from_unit]
        result = {"celsius": celsius, "fahrenheit": celsius * 9 / 5 + 32, "kelvin": celsius + 273.15}[to_unit]
    else:
        result = value * size / UNITS[to_unit][1]
    return round(result, 4)


def distance_km(origin: str, destination: str) -> float:
    """Great-circle distance between two cities in km (unrounded)."""
    a, b = CITIES[origin], CITIES[destination]
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat, dlon = lat2 - lat1, math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


# ---- weather ------------------------------------------------------------------------------
def weather(city: str, date: str) -> dict[str, Any]:
    """The weather in `city` on `date` (YYYY-MM-DD), temperatures in Celsius."""
    c = CITIES[city]
    rng = seeded("weather", city, date)
    day = datetime.date.fromisoformat(date).timetuple().tm_yday
    hemisphere = 1.0 if c.lat >= 0 else -1.0
    seasonal = c.swing_c * math.cos(2 * math.pi * (day - 196) / 365.25) * hemisphere
    temperature = round(c.mean_c + seasonal + rng.uniform(-3.5, 3.5), 1)
    roll = rng.random()
    if roll < c.wet:
        condition = "snowy" if temperature <= 1.0 else "rainy"
    elif roll < c.wet + 0.3:
        condition = "cloudy"
    elif roll < c.wet + 0.4:
        condition = "windy"
    else:
        condition = "sunny"
    humidity = int(rng.uniform(35, 70) + (20 if condition in ("rainy", "snowy") else 0))
    return {"condition": condition, "temperature_c": temperature, "humidity_percent": humidity}


def to_fahrenheit(celsius: float) -> float:
    return round(celsius * 9 / 5 + 32, 1)


# ---- flights ------------------------------------------------------------------------------
AIRLINES = (
    ("AF", "Air France"),
    ("BA", "British Airways"),
    ("LH", "Lufthansa"),
    ("UA", "United Airlines"),
    ("NH", "ANA"),
    ("EK", "Emirates"),
    ("QF", "Qantas"),
    ("SQ", "Singapore Airlines"),
    ("IB", "Iberia"),
    ("AC", "Air Canada"),
)


def flights(origin: str, destination: str, date: str, cabin: str) -> list[dict[str, Any]]:
    """The flights on a route and day: 3-5 of them, distinct ids and prices, in departure order."""
    rng = seeded("flights", origin, destination, date, cabin)
    km = distance_km(origin, destination)
    found: list[dict[str, Any]] = []
    ids: set[str] = set()
    prices: set[float] = set()
    for _ in range(rng.randint(3, 5)):
        airline_code, airline = rng.choice(AIRLINES)
        flight_id = f"{airline_code}{rng.randint(100, 999)}"
        while flight_id in ids:
            flight_id = f"{airline_code}{rng.randint(100, 999)}"
        price = round((60 + km * 0.075) * rng.uniform(0.7, 1.6) * (3.2 if cabin == "business" else 1.0), 2)
        while price in prices:
            price = round(price + 1.0, 2)
        ids.add(flight_id)
        prices.add(price)
        found.append(
            {
                "flight_id": flight_id,
                "airline": airline,
                "departure": f"{rng.randint(6, 22):02d}:{rng.choice((0, 15, 30, 45)):02d}",
                "duration_minutes": int(km / 820 * 60 + 40 + rng.randint(-10, 25)),
                "price_usd": price,
            }
        )
    return sorted(found, key=lambda f: f["departure"])


# ---- hotels -------------------------------------------------------------------------------
HOTEL_WORDS = (
    ("Grand", "Royal", "Riverside", "Central", "Harbour", "Garden", "Old Town", "Skyline", "Park", "Station"),
    ("Hotel", "Inn", "Suites", "Lodge", "Residence", "Palace"),
)


@cache
def hotels(city: str) -> tuple[dict[str, Any], ...]:
    """The six hotels of `city`: id, name, stars and base nightly price."""
    rng = seeded("hotels", city)
    names = set()
    found = []
    for i in range(6):
        name = f"{rng.choice(HOTEL_WORDS[0])} {rng.choice(HOTEL_WORDS[1])}"
        while name in names:
            name = f"{rng.choice(HOTEL_WORDS[0])} {rng.choice(HOTEL_WORDS[1])}"
        names.add(name)
        stars = rng.randint(2, 5)
        base = (30 + stars * 38) * rng.uniform(0.8, 1.3) * CITIES[city].cost
        found.append(
            {"hotel_id": f"H-{CITY_CODES[city]}-{i + 1}", "name": name, "stars": stars, "base": base}
        )
    return tuple(found)


def hotel_by_id(hotel_id: str) -> tuple[str, dict[str, Any]] | None:
    for city, city_code in CITY_CODES.items():
        if hotel_id.startswith(f"H-{city_code}-"):
            for hotel in hotels(city):
                if hotel["hotel_id"] == hotel_id:
                    return city, hotel
    return None


def nightly_price(hotel: dict[str, Any], check_in: str) -> float:
    """A hotel's price per night in USD for a stay starting on `check_in`."""
    month = datetime.date.fromisoformat(check_in).month
    season = 1.0 + 0.25 * math.cos(2 * math.pi * (month - 7) / 12)
    jitter = seeded("night", hotel["hotel_id"], check_in).uniform(0.9, 1.1)
    return round(hotel["base"] * season * jitter, 2)


# ---- the database and the shop's catalogue ------------------------------------------------
FIRST_NAMES = (
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jonas",
    "Keiko", "Liam", "Maya", "Nils", "Olga", "Pedro", "Quinn", "Rosa", "Sami", "Tara",
)  # fmt: skip
LAST_NAMES = (
    "Adler", "Baker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Larsen", "Moreau", "Novak", "Okafor", "Patel", "Rossi", "Silva", "Tanaka", "Weber",
)  # fmt: skip
DEPARTMENTS = ("Engineering", "Sales", "Marketing", "Finance", "Support")
PRODUCT_WORDS = {
    "Electronics": ("Headphones", "Charger", "Speaker", "Keyboard", "Webcam", "Monitor"),
    "Books": ("Cookbook", "Novel", "Atlas", "Biography", "Poetry Collection", "Field Guide"),
    "Kitchen": ("Kettle", "Frying Pan", "Knife Set", "Blender", "Teapot", "Cutting Board"),
    "Sports": ("Yoga Mat", "Tennis Racket", "Water Bottle", "Running Shoes", "Dumbbells", "Jump Rope"),
    "Toys": ("Puzzle", "Kite", "Building Blocks", "Board Game", "Toy Train", "Plush Bear"),
}
CATEGORIES = tuple(PRODUCT_WORDS)
PRODUCT_ADJECTIVES = ("Classic", "Compact", "Deluxe", "Eco", "Pro", "Travel")


@cache
def employees() -> tuple[dict[str, Any], ...]:
    rng = seeded("db", "employees")
    names = [f"{first} {last}" for first, last in zip(FIRST_NAMES, rng.sample(LAST_NAMES, len(LAST_NAMES)))]
    rows = []
    for i, name in enumerate(names):
        rows.append(
            {
                "id": i + 1,
                "name": name,
                "department": rng.choice(DEPARTMENTS),
                "salary_usd": rng.randrange(42_000, 140_000, 500),
                "city": rng.choice(CITY_NAMES),
                "start_year": rng.randint(2008, 2024),
            }
        )
    return tuple(rows)


@cache
def products() -> tuple[dict[str, Any], ...]:
    rng = seeded("db", "products")
    rows = []
    for category, nouns in PRODUCT_WORDS.items():
        for noun in nouns:
            rows.append(
                {
                    "product_id": f"P-{len(rows) + 1:03d}",
                    "name": f"{rng.choice(PRODUCT_ADJECTIVES)} {noun}",
                    "category": category,
                    "price_usd": round(rng.uniform(6, 180), 2),
                    "stock": rng.randint(5, 60),
                }
            )
    return tuple(rows)


TABLES = {"employees": employees, "products": products}
TABLE_KEYS = {"employees": "id", "products": "product_id"}


def table_columns(table: str) -> list[str]:
    return list(TABLES[table]()[0])


def numeric_columns(table: str) -> list[str]:
    row = TABLES[table]()[0]
    return [k for k, v in row.items() if isinstance(v, (int, float)) and k != TABLE_KEYS[table]]


# ---- the calendar -------------------------------------------------------------------------
EVENT_TITLES = (
    "Team standup", "Dentist appointment", "Lunch with Sam", "Project review", "Gym session",
    "Call with the bank", "Book club", "Yoga class", "Budget meeting", "Car service",
    "Piano lesson", "Doctor's appointment", "Coffee with Priya", "Quarterly planning",
)  # fmt: skip


def calendar_events(seed: str) -> list[dict[str, Any]]:
    """The events already on a task's calendar: 8-11 events over 4 days of one month."""
    rng = seeded("calendar", seed)
    month = rng.randint(1, 12)
    days = sorted(rng.sample(range(1, 29), 4))
    events = []
    for _ in range(rng.randint(8, 11)):
        date = f"2025-{month:02d}-{rng.choice(days):02d}"
        taken = {e["start_time"] for e in events if e["date"] == date}
        start = f"{rng.randint(7, 19):02d}:{rng.choice((0, 30)):02d}"
        while start in taken:
            start = f"{rng.randint(7, 19):02d}:{rng.choice((0, 30)):02d}"
        title = rng.choice(EVENT_TITLES)
        duration = rng.choice((15, 30, 45, 60, 90))
        events.append(make_event(title, date, start, duration))
    return events


def make_event(title: str, date: str, start_time: str, duration_minutes: int) -> dict[str, Any]:
    hours, minutes = map(int, start_time.split(":"))
    end = hours * 60 + minutes + duration_minutes
    return {
        "event_id": "EV-" + code("event", title, date, start_time, length=5),
        "title": title,
        "date": date,
        "start_time": start_time,
        "end_time": f"{(end // 60) % 24:02d}:{end % 60:02d}",
        "duration_minutes": duration_minutes,
    }
