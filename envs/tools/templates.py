"""The 25 kinds of tool-use query: how each draws its parameters, plans its calls, reads its answer.

A `Template`'s `steps` are (function, arguments from the parameters and the results so
far): chained steps read earlier results (the cheapest flight's id, a distance). Queries
name cities, dates, amounts and people drawn from the task's seeded generator.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from envs.tools import data
from envs.tools.backend import ToolWorld
from envs.tools.data import CATEGORIES, CITIES, CITY_NAMES, CURRENCIES

Params = dict[str, Any]
Results = list[dict[str, Any]]
Step = tuple[str, Callable[[Params, Results], dict[str, Any]]]


@dataclass(frozen=True)
class Template:
    """A kind of query: how to draw its parameters, its plan of calls, and its answer.

    `steps` are (function, arguments from the parameters and the results so far);
    `answer` reads the final answer from the parameters and the results of every step.
    """

    name: str
    sample: Callable[[random.Random, ToolWorld], Params]
    steps: tuple[Step, ...]
    answer: Callable[[Params, Results], Any]

    @property
    def functions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for name, _ in self.steps))


# ---- drawing parameters -------------------------------------------------------------------
def _date(rng: random.Random, year: int = 2025) -> str:
    return (datetime.date(year, 1, 1) + datetime.timedelta(days=rng.randrange(365))).isoformat()


def _person(rng: random.Random) -> str:
    return f"{rng.choice(data.FIRST_NAMES)} {rng.choice(data.LAST_NAMES)}"


def _two_cities(rng: random.Random, pool: tuple[str, ...] = CITY_NAMES) -> tuple[str, str]:
    a, b = rng.sample(pool, 2)
    return a, b


def _amount(rng: random.Random) -> float:
    return rng.choice((rng.randrange(10, 5000, 5), round(rng.uniform(5, 2000), 2)))


def _cheapest(items: list[dict[str, Any]], price: str) -> dict[str, Any]:
    return min(items, key=lambda item: item[price])


UNIT_WORDS = {
    "m": "meters", "km": "kilometers", "cm": "centimeters", "mi": "miles", "ft": "feet", "in": "inches",
    "g": "grams", "kg": "kilograms", "lb": "pounds", "oz": "ounces",
    "ml": "milliliters", "l": "liters", "gal": "US gallons", "cup": "US cups",
    "celsius": "degrees Celsius", "fahrenheit": "degrees Fahrenheit", "kelvin": "kelvin",
}  # fmt: skip
EVENT_NAMES = (
    "Dinner with Alex", "Haircut", "Team offsite", "Visa appointment", "Guitar lesson",
    "Parent-teacher meeting", "Vet visit", "Interview with Dana", "Movie night", "Tax advisor",
)  # fmt: skip
DRIVE_REGIONS = (
    ("Paris", "London", "Berlin", "Madrid", "Rome", "Zurich"),
    ("New York", "Toronto", "Mexico City"),
)


def _weather(rng: random.Random, world: ToolWorld) -> Params:
    city, date = rng.choice(CITY_NAMES), _date(rng)
    query = rng.choice(
        (
            f"What is the weather condition in {city} on {date}?",
            f"I'm visiting {city} on {date}. Is it sunny, cloudy, windy, rainy or snowy there that day?",
        )
    )
    return {"city": city, "date": date, "query": query + " Answer with the condition alone."}


def _weather_fahrenheit(rng: random.Random, world: ToolWorld) -> Params:
    city, date = rng.choice(CITY_NAMES), _date(rng)
    return {
        "city": city,
        "date": date,
        "query": f"What is the temperature in {city} on {date}, in Fahrenheit?",
    }


def _forecast(rng: random.Random, world: ToolWorld) -> Params:
    city, date, days = rng.choice(CITY_NAMES), _date(rng), rng.randint(2, 7)
    query = (
        f"Looking at the {days} days starting on {date}, what is the highest daily temperature "
        f"in {city} in degrees Celsius?"
    )
    return {"city": city, "date": date, "days": days, "query": query}


def _money(rng: random.Random, world: ToolWorld) -> Params:
    source, target = rng.sample(CURRENCIES, 2)
    amount = _amount(rng)
    return {
        "amount": amount,
        "from": source,
        "to": target,
        "query": f"How much is {amount} {source} in {target}?",
    }


def _rate(rng: random.Random, world: ToolWorld) -> Params:
    base, target = rng.sample(CURRENCIES, 2)
    query = f"What is today's exchange rate from {base} to {target}, i.e. how many {target} one {base} buys?"
    return {"base": base, "target": target, "query": query}


def _units(rng: random.Random, world: ToolWorld) -> Params:
    dimension = rng.choice(("length", "mass", "volume", "temperature"))
    source, target = rng.sample(data.units_of(dimension), 2)
    value = rng.choice((rng.randint(1, 500), round(rng.uniform(0.5, 300), 1)))
    query = f"Convert {value} {UNIT_WORDS[source]} to {UNIT_WORDS[target]}."
    return {"value": value, "from": source, "to": target, "query": query}


def _kelvin(rng: random.Random, world: ToolWorld) -> Params:
    city, date = rng.choice(CITY_NAMES), _date(rng)
    query = f"For a physics class: what was the temperature in {city} on {date} in kelvin? Use the converter."
    return {"city": city, "date": date, "query": query}


def _event_day(rng: random.Random, world: ToolWorld) -> str:
    return rng.choice(sorted({e["date"] for e in world.events}))


def _count_events(rng: random.Random, world: ToolWorld) -> Params:
    date = _event_day(rng, world)
    return {"date": date, "query": f"How many events do I have on my calendar on {date}?"}


def _first_event(rng: random.Random, world: ToolWorld) -> Params:
    date = _event_day(rng, world)
    return {"date": date, "query": f"What is the title of my earliest event on {date}?"}


def _create_event(rng: random.Random, world: ToolWorld) -> Params:
    title, date = rng.choice(EVENT_NAMES), _date(rng)
    start = f"{rng.randint(8, 20):02d}:{rng.choice(('00', '15', '30', '45'))}"
    if rng.random() < 0.5:
        hours = rng.choice((1, 2, 3))
        minutes, length = hours * 60, f"{hours} hour{'s' if hours > 1 else ''}"
    else:
        minutes = rng.choice((20, 30, 45, 50, 75, 90))
        length = f"{minutes} minutes"
    query = f"Put '{title}' on my calendar on {date} at {start} for {length}. What event id does it get?"
    return {"title": title, "date": date, "start": start, "minutes": minutes, "query": query}


def _route(rng: random.Random) -> Params:
    origin, destination = _two_cities(rng)
    return {"origin": origin, "destination": destination, "date": _date(rng)}


def _flight_price(rng: random.Random, world: ToolWorld) -> Params:
    p = _route(rng)
    p["query"] = (
        f"What does the cheapest economy flight from {p['origin']} to {p['destination']} on {p['date']} cost in USD?"
    )
    return p


def _book_flight(rng: random.Random, world: ToolWorld) -> Params:
    p = {**_route(rng), "passenger": _person(rng)}
    p["query"] = (
        f"Book the cheapest flight from {p['origin']} to {p['destination']} on {p['date']} for "
        f"{p['passenger']}. What is the confirmation code?"
    )
    return p


def _book_flight_converted(rng: random.Random, world: ToolWorld) -> Params:
    p = {**_route(rng), "passenger": _person(rng)}
    p["currency"] = rng.choice([c for c in CURRENCIES if c != "USD"])
    p["query"] = (
        f"Please book the cheapest flight from {p['origin']} to {p['destination']} on {p['date']} for "
        f"{p['passenger']}, then tell me what the ticket costs in {p['currency']}."
    )
    return p


def _book_hotel(rng: random.Random, world: ToolWorld) -> Params:
    city = rng.choice(CITY_NAMES)
    best = max(h["stars"] for h in data.hotels(city))
    p = {"city": city, "date": _date(rng), "nights": rng.randint(1, 7), "guest": _person(rng)}
    p["stars"] = rng.randint(2, best)
    p["query"] = (
        f"Book the cheapest hotel with at least {p['stars']} stars in {city} for {p['nights']} "
        f"night{'s' if p['nights'] > 1 else ''} from {p['date']}, for {p['guest']}. What is the total price in USD?"
    )
    return p


def _hotel_local(rng: random.Random, world: ToolWorld) -> Params:
    city = rng.choice(CITY_NAMES)
    currency = CITIES[city].currency if CITIES[city].currency != "USD" else "EUR"
    p = {"city": city, "date": _date(rng), "nights": rng.randint(1, 5), "currency": currency}
    p["query"] = (
        f"I need a room in {city} for {p['nights']} night{'s' if p['nights'] > 1 else ''} from {p['date']}. "
        f"What is the lowest nightly rate, in {currency}?"
    )
    return p


def _salary(rng: random.Random, world: ToolWorld) -> Params:
    name = rng.choice(data.employees())["name"]
    return {"name": name, "query": f"According to the employees table, what is {name}'s salary in USD?"}


def _average_price(rng: random.Random, world: ToolWorld) -> Params:
    category = rng.choice(CATEGORIES)
    return {
        "category": category,
        "query": f"What is the average price in USD of the products in the {category} category?",
    }


def _headcount(rng: random.Random, world: ToolWorld) -> Params:
    department = rng.choice(data.DEPARTMENTS)
    return {"department": department, "query": f"How many employees work in the {department} department?"}


def _calculation(rng: random.Random, world: ToolWorld) -> Params:
    a, b, c = rng.randint(2, 999), rng.randint(2, 99), rng.randint(2, 40)
    d = round(rng.uniform(1, 50), 1)
    expression = rng.choice(
        (f"({a} + {b}) * {c}", f"{a} * {b} - {c} / {d}", f"({a} - {d}) / {c}", f"{b} ** 2 + {a}")
    )
    return {"expression": expression, "query": f"Use the calculator: what is {expression}?"}


def _distance_miles(rng: random.Random, world: ToolWorld) -> Params:
    origin, destination = _two_cities(rng)
    query = f"How far apart are {origin} and {destination} in miles (great-circle distance)?"
    return {"origin": origin, "destination": destination, "query": query}


def _travel_time(rng: random.Random, world: ToolWorld) -> Params:
    origin, destination = _two_cities(rng, rng.choice(DRIVE_REGIONS))
    speed = rng.choice((60, 80, 90, 100, 110, 120))
    query = (
        f"How many hours would it take to cover the great-circle distance from {origin} to {destination} "
        f"at {speed} km/h? Look the distance up in km, then divide it by the speed with the calculator."
    )
    return {"origin": origin, "destination": destination, "speed": speed, "query": query}


def _buy_cheapest(rng: random.Random, world: ToolWorld) -> Params:
    category, quantity = rng.choice(CATEGORIES), rng.randint(1, 3)
    query = f"Add {quantity} of the cheapest product in the {category} category to my cart. What is the cart total in USD?"
    return {"category": category, "quantity": quantity, "query": query}


def _stock(rng: random.Random, world: ToolWorld) -> Params:
    product = rng.choice(data.products())["name"]
    return {"product": product, "query": f"How many {product} are in stock, according to the products table?"}


def _two_products(rng: random.Random, world: ToolWorld) -> Params:
    first, second = rng.sample(data.products(), 2)
    q1, q2 = rng.randint(1, 3), rng.randint(1, 3)
    query = (
        f"Put {q1} x {first['name']} ({first['product_id']}) and {q2} x {second['name']} "
        f"({second['product_id']}) in my cart, then look at the cart: what is its total in USD?"
    )
    return {"first": first["product_id"], "second": second["product_id"], "q1": q1, "q2": q2, "query": query}


def _warmer(rng: random.Random, world: ToolWorld) -> Params:
    while True:
        (a, b), date = _two_cities(rng), _date(rng)
        difference = data.weather(a, date)["temperature_c"] - data.weather(b, date)["temperature_c"]
        if abs(difference) >= 0.5:
            break
    query = f"Which was warmer on {date}, {a} or {b}? Answer with the city's name."
    return {"first": a, "second": b, "date": date, "query": query}


def _flight_search(p: Params, r: Results) -> dict[str, Any]:
    return {"origin": p["origin"], "destination": p["destination"], "date": p["date"]}


def _book_cheapest_flight(p: Params, r: Results) -> dict[str, Any]:
    return {
        "flight_id": _cheapest(r[0]["flights"], "price_usd")["flight_id"],
        "passenger_name": p["passenger"],
    }


TEMPLATE_LIST = (
    Template(
        "weather_condition",
        _weather,
        (("get_weather", lambda p, r: {"city": p["city"], "date": p["date"]}),),
        lambda p, r: r[0]["condition"],
    ),
    Template(
        "weather_fahrenheit",
        _weather_fahrenheit,
        (("get_weather", lambda p, r: {"city": p["city"], "date": p["date"], "unit": "fahrenheit"}),),
        lambda p, r: r[0]["temperature"],
    ),
    Template(
        "forecast_high",
        _forecast,
        (("get_forecast", lambda p, r: {"city": p["city"], "start_date": p["date"], "days": p["days"]}),),
        lambda p, r: max(day["temperature"] for day in r[0]["days"]),
    ),
    Template(
        "convert_money",
        _money,
        (
            (
                "convert_currency",
                lambda p, r: {"amount": p["amount"], "from_currency": p["from"], "to_currency": p["to"]},
            ),
        ),
        lambda p, r: r[0]["converted_amount"],
    ),
    Template(
        "exchange_rate",
        _rate,
        (("get_exchange_rate", lambda p, r: {"base": p["base"], "target": p["target"]}),),
        lambda p, r: r[0]["rate"],
    ),
    Template(
        "convert_units",
        _units,
        (("convert_units", lambda p, r: {"value": p["value"], "from_unit": p["from"], "to_unit": p["to"]}),),
        lambda p, r: r[0]["result"],
    ),
    Template(
        "temperature_kelvin",
        _kelvin,
        (
            ("get_weather", lambda p, r: {"city": p["city"], "date": p["date"]}),
            (
                "convert_units",
                lambda p, r: {"value": r[0]["temperature"], "from_unit": "celsius", "to_unit": "kelvin"},
            ),
        ),
        lambda p, r: r[1]["result"],
    ),
    Template(
        "count_events",
        _count_events,
        (("list_events", lambda p, r: {"date": p["date"]}),),
        lambda p, r: len(r[0]["events"]),
    ),
    Template(
        "earliest_event",
        _first_event,
        (("list_events", lambda p, r: {"date": p["date"]}),),
        lambda p, r: r[0]["events"][0]["title"],
    ),
    Template(
        "create_event",
        _create_event,
        (
            (
                "create_event",
                lambda p, r: {
                    "title": p["title"],
                    "date": p["date"],
                    "start_time": p["start"],
                    "duration_minutes": p["minutes"],
                },
            ),
        ),
        lambda p, r: r[0]["event_id"],
    ),
    Template(
        "cheapest_flight_price",
        _flight_price,
        (("search_flights", _flight_search),),
        lambda p, r: _cheapest(r[0]["flights"], "price_usd")["price_usd"],
    ),
    Template(
        "book_cheapest_flight",
        _book_flight,
        (("search_flights", _flight_search), ("book_flight", _book_cheapest_flight)),
        lambda p, r: r[1]["confirmation"],
    ),
    Template(
        "book_cheapest_hotel",
        _book_hotel,
        (
            (
                "search_hotels",
                lambda p, r: {
                    "city": p["city"],
                    "check_in": p["date"],
                    "nights": p["nights"],
                    "min_stars": p["stars"],
                },
            ),
            (
                "book_hotel",
                lambda p, r: {
                    "hotel_id": _cheapest(r[0]["hotels"], "price_per_night_usd")["hotel_id"],
                    "check_in": p["date"],
                    "nights": p["nights"],
                    "guest_name": p["guest"],
                },
            ),
        ),
        lambda p, r: r[1]["total_price_usd"],
    ),
    Template(
        "hotel_rate_local_currency",
        _hotel_local,
        (
            ("search_hotels", lambda p, r: {"city": p["city"], "check_in": p["date"], "nights": p["nights"]}),
            (
                "convert_currency",
                lambda p, r: {
                    "amount": _cheapest(r[0]["hotels"], "price_per_night_usd")["price_per_night_usd"],
                    "from_currency": "USD",
                    "to_currency": p["currency"],
                },
            ),
        ),
        lambda p, r: r[1]["converted_amount"],
    ),
    Template(
        "employee_salary",
        _salary,
        (
            (
                "query_database",
                lambda p, r: {"table": "employees", "where_column": "name", "equals": p["name"]},
            ),
        ),
        lambda p, r: r[0]["rows"][0]["salary_usd"],
    ),
    Template(
        "average_price",
        _average_price,
        (
            (
                "aggregate_database",
                lambda p, r: {
                    "table": "products",
                    "operation": "avg",
                    "column": "price_usd",
                    "where_column": "category",
                    "equals": p["category"],
                },
            ),
        ),
        lambda p, r: r[0]["value"],
    ),
    Template(
        "department_headcount",
        _headcount,
        (
            (
                "aggregate_database",
                lambda p, r: {
                    "table": "employees",
                    "operation": "count",
                    "where_column": "department",
                    "equals": p["department"],
                },
            ),
        ),
        lambda p, r: r[0]["value"],
    ),
    Template(
        "calculation",
        _calculation,
        (("calculate", lambda p, r: {"expression": p["expression"]}),),
        lambda p, r: r[0]["result"],
    ),
    Template(
        "distance_miles",
        _distance_miles,
        (
            (
                "get_distance",
                lambda p, r: {"origin": p["origin"], "destination": p["destination"], "unit": "mi"},
            ),
        ),
        lambda p, r: r[0]["distance"],
    ),
    Template(
        "travel_time",
        _travel_time,
        (
            ("get_distance", lambda p, r: {"origin": p["origin"], "destination": p["destination"]}),
            ("calculate", lambda p, r: {"expression": f"{r[0]['distance']} / {p['speed']}"}),
        ),
        lambda p, r: r[1]["result"],
    ),
    Template(
        "buy_cheapest_product",
        _buy_cheapest,
        (
            ("search_products", lambda p, r: {"category": p["category"]}),
            (
                "add_to_cart",
                lambda p, r: {
                    "product_id": _cheapest(r[0]["products"], "price_usd")["product_id"],
                    "quantity": p["quantity"],
                },
            ),
        ),
        lambda p, r: r[1]["total_usd"],
    ),
    Template(
        "book_flight_in_currency",
        _book_flight_converted,
        (
            ("search_flights", _flight_search),
            ("book_flight", _book_cheapest_flight),
            (
                "convert_currency",
                lambda p, r: {
                    "amount": r[1]["price_usd"],
                    "from_currency": "USD",
                    "to_currency": p["currency"],
                },
            ),
        ),
        lambda p, r: r[2]["converted_amount"],
    ),
    Template(
        "warmer_city",
        _warmer,
        (
            ("get_weather", lambda p, r: {"city": p["first"], "date": p["date"]}),
            ("get_weather", lambda p, r: {"city": p["second"], "date": p["date"]}),
        ),
        lambda p, r: p["first"] if r[0]["temperature"] > r[1]["temperature"] else p["second"],
    ),
    Template(
        "product_stock",
        _stock,
        (
            (
                "query_database",
                lambda p, r: {"table": "products", "where_column": "name", "equals": p["product"]},
            ),
        ),
        lambda p, r: r[0]["rows"][0]["stock"],
    ),
    Template(
        "cart_of_two",
        _two_products,
        (
            ("add_to_cart", lambda p, r: {"product_id": p["first"], "quantity": p["q1"]}),
            ("add_to_cart", lambda p, r: {"product_id": p["second"], "quantity": p["q2"]}),
            ("view_cart", lambda p, r: {}),
        ),
        lambda p, r: r[2]["total_usd"],
    ),
)
TEMPLATES = {template.name: template for template in TEMPLATE_LIST}
