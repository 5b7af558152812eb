"""The simulated APIs' schemas: ten APIs, eighteen functions (`TOOLS`), and their OpenAI form.

Weather, Currency, Units, Calendar, Flights, Hotels, Database, Calculator, Maps and
Shop. Each function is a `ToolSpec` (see `envs.tools.schema`): a call is validated
against it, including the checks that span several arguments (km cannot become kg),
before its deterministic backend (`envs.tools.backend.ToolWorld`) runs it.
"""

from __future__ import annotations

from typing import Any

from envs.tools import data
from envs.tools.data import CATEGORIES, CITY_NAMES, CURRENCIES, UNITS
from envs.tools.schema import Param, ToolSpec

API_DESCRIPTIONS = {
    "Weather": f"observed weather and daily forecasts for {len(CITY_NAMES)} cities",
    "Currency": f"exchange rates and conversions between {len(CURRENCIES)} currencies",
    "Units": "conversions between units of length, mass, volume and temperature",
    "Calendar": "the user's calendar: list the events of a day, create events",
    "Flights": "search flights between cities and book a seat",
    "Hotels": "search the hotels of a city and book a stay",
    "Database": "a small company database with the tables employees and products",
    "Calculator": "evaluate an arithmetic expression",
    "Maps": "great-circle distances between cities",
    "Shop": "an online shop: search its catalogue (the products table) and fill a cart",
}

TEMPERATURE_UNIT = Param(
    "unit", "string", "the temperature unit of the answer", False, ("celsius", "fahrenheit"), "celsius",
    unit="temperature unit",
)  # fmt: skip


def _city(name: str, description: str) -> Param:
    return Param(name, "string", description, enum=CITY_NAMES)


def _different_cities(args: dict[str, Any]) -> str | None:
    if args["origin"] == args["destination"]:
        return f"origin and destination must be different cities (both are {args['origin']!r})"
    return None


def _same_dimension(args: dict[str, Any]) -> str | None:
    (source, _), (target, _) = UNITS[args["from_unit"]], UNITS[args["to_unit"]]
    if source != target:
        allowed = ", ".join(data.units_of(source))
        return (
            f"cannot convert {args['from_unit']} ({source}) to {args['to_unit']} ({target}): "
            f"to_unit must be a {source} unit ({allowed})"
        )
    return None


def _column_of_table(args: dict[str, Any]) -> str | None:
    columns = data.table_columns(args["table"])
    if args["where_column"] not in columns:
        return f"table {args['table']!r} has no column {args['where_column']!r}; its columns are {', '.join(columns)}"
    return None


def _aggregate_columns(args: dict[str, Any]) -> str | None:
    table, operation = args["table"], args["operation"]
    numeric = data.numeric_columns(table)
    column = args.get("column")
    if operation != "count":
        if column is None:
            return f"operation {operation!r} needs a column: one of {', '.join(numeric)} (the numeric columns of {table})"
        if column not in numeric:
            return f"column must be a numeric column of {table} ({', '.join(numeric)}) for {operation!r}, got {column!r}"
    elif column is not None and column not in data.table_columns(table):
        return f"table {table!r} has no column {column!r}; its columns are {', '.join(data.table_columns(table))}"
    if ("where_column" in args) != ("equals" in args):
        return "where_column and equals go together: give both to filter the rows, or neither"
    if "where_column" in args and args["where_column"] not in data.table_columns(table):
        columns = ", ".join(data.table_columns(table))
        return f"table {table!r} has no column {args['where_column']!r}; its columns are {columns}"
    return None


TOOL_LIST = (
    ToolSpec(
        "get_weather",
        "The weather observed in a city on a date: condition, temperature and humidity.",
        (_city("city", "the city"), Param("date", "string", "the day", format="date"), TEMPERATURE_UNIT),
        api="Weather",
    ),
    ToolSpec(
        "get_forecast",
        "The daily weather of a city for several consecutive days, from a start date.",
        (
            _city("city", "the city"),
            Param("start_date", "string", "the first day", format="date"),
            Param("days", "integer", "how many days", minimum=1, maximum=7),
            TEMPERATURE_UNIT,
        ),
        api="Weather",
    ),
    ToolSpec(
        "convert_currency",
        "Convert an amount of money from one currency to another at today's rate.",
        (
            Param("amount", "number", "the amount, in from_currency", minimum=0, maximum=1e9),
            Param("from_currency", "string", "ISO code of the currency of the amount", enum=CURRENCIES),
            Param("to_currency", "string", "ISO code of the currency wanted", enum=CURRENCIES),
        ),
        api="Currency",
    ),
    ToolSpec(
        "get_exchange_rate",
        "Today's exchange rate: units of the target currency per one unit of the base currency.",
        (
            Param("base", "string", "ISO code of the base currency", enum=CURRENCIES),
            Param("target", "string", "ISO code of the target currency", enum=CURRENCIES),
        ),
        api="Currency",
    ),
    ToolSpec(
        "convert_units",
        "Convert a quantity between units of the same kind (length, mass, volume, temperature).",
        (
            Param("value", "number", "the quantity, in from_unit"),
            Param("from_unit", "string", "the unit of value", enum=tuple(UNITS), unit="unit"),
            Param("to_unit", "string", "the unit wanted", enum=tuple(UNITS), unit="unit"),
        ),
        api="Units",
        check=_same_dimension,
    ),
    ToolSpec(
        "create_event",
        "Add an event to the user's calendar; returns it with its event_id and any overlapping events.",
        (
            Param("title", "string", "what the event is"),
            Param("date", "string", "the day", format="date"),
            Param("start_time", "string", "when it starts", format="time"),
            Param("duration_minutes", "integer", "how long it lasts", minimum=5, maximum=480, unit="minutes"),
        ),
        api="Calendar",
    ),
    ToolSpec(
        "list_events",
        "The events on the user's calendar on a day, earliest first.",
        (Param("date", "string", "the day", format="date"),),
        api="Calendar",
    ),
    ToolSpec(
        "search_flights",
        "The flights between two cities on a day, with their flight_id, departure time and price in USD.",
        (
            _city("origin", "the departure city"),
            _city("destination", "the arrival city"),
            Param("date", "string", "the day of travel", format="date"),
            Param("cabin", "string", "the cabin class", False, ("economy", "business"), "economy"),
        ),
        api="Flights",
        check=_different_cities,
    ),
    ToolSpec(
        "book_flight",
        "Book a seat on a flight that search_flights returned; returns a confirmation code.",
        (
            Param("flight_id", "string", "the flight_id from search_flights"),
            Param("passenger_name", "string", "the passenger's full name"),
        ),
        api="Flights",
    ),
    ToolSpec(
        "search_hotels",
        "The hotels of a city with a room for the stay, with their hotel_id, stars and nightly price in USD.",
        (
            _city("city", "the city"),
            Param("check_in", "string", "the day of arrival", format="date"),
            Param("nights", "integer", "how many nights", minimum=1, maximum=14),
            Param(
                "min_stars", "integer", "the fewest stars acceptable", False, default=1, minimum=1, maximum=5
            ),
        ),
        api="Hotels",
    ),
    ToolSpec(
        "book_hotel",
        "Book a stay at a hotel; returns a confirmation code and the total price in USD.",
        (
            Param("hotel_id", "string", "the hotel_id from search_hotels"),
            Param("check_in", "string", "the day of arrival", format="date"),
            Param("nights", "integer", "how many nights", minimum=1, maximum=14),
            Param("guest_name", "string", "the guest's full name"),
        ),
        api="Hotels",
    ),
    ToolSpec(
        "query_database",
        "The rows of a table whose column equals a value (compared as text, ignoring case).",
        (
            Param("table", "string", "the table", enum=tuple(data.TABLES)),
            Param("where_column", "string", "the column to filter on"),
            Param("equals", "string", "the value that column must have, as text"),
        ),
        api="Database",
        check=_column_of_table,
    ),
    ToolSpec(
        "aggregate_database",
        "Count the rows of a table, or the sum, average (avg), minimum or maximum of a numeric column, "
        "optionally over the rows whose where_column equals a value.",
        (
            Param("table", "string", "the table", enum=tuple(data.TABLES)),
            Param("operation", "string", "the aggregate", enum=("count", "sum", "avg", "min", "max")),
            Param("column", "string", "the numeric column to aggregate (not needed for count)", False),
            Param("where_column", "string", "a column to filter on", False),
            Param("equals", "string", "the value where_column must have, as text", False),
        ),
        api="Database",
        check=_aggregate_columns,
    ),
    ToolSpec(
        "calculate",
        "Evaluate an arithmetic expression with numbers, + - * / ** and parentheses.",
        (Param("expression", "string", "the expression, e.g. (12.5 + 3) * 4"),),
        api="Calculator",
    ),
    ToolSpec(
        "get_distance",
        "The great-circle distance between two cities.",
        (
            _city("origin", "one city"),
            _city("destination", "the other city"),
            Param(
                "unit",
                "string",
                "the distance unit of the answer",
                False,
                ("km", "mi"),
                "km",
                unit="distance unit",
            ),
        ),
        api="Maps",
        check=_different_cities,
    ),
    ToolSpec(
        "search_products",
        "The shop's products in a category, with their product_id, price in USD and stock.",
        (
            Param("category", "string", "the category", enum=CATEGORIES),
            Param(
                "max_price_usd",
                "number",
                "the highest price to list",
                False,
                minimum=0,
                maximum=100000,
                unit="USD",
            ),
        ),
        api="Shop",
    ),
    ToolSpec(
        "add_to_cart",
        "Put a quantity of a product in the cart; returns the cart and its total in USD.",
        (
            Param("product_id", "string", "the product_id from search_products"),
            Param("quantity", "integer", "how many", minimum=1, maximum=10),
        ),
        api="Shop",
    ),
    ToolSpec("view_cart", "The cart: its items and their total in USD.", (), api="Shop"),
)
TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in TOOL_LIST}
APIS: tuple[str, ...] = tuple(API_DESCRIPTIONS)
FUNCTIONS_OF_API: dict[str, tuple[str, ...]] = {
    api: tuple(spec.name for spec in TOOL_LIST if spec.api == api) for api in APIS
}


def openai_tools(names: list[str] | None = None) -> list[dict[str, Any]]:
    """The OpenAI `tools` list of the named functions (all of them by default), in library order."""
    wanted = set(TOOLS if names is None else names)
    return [spec.openai_tool() for spec in TOOL_LIST if spec.name in wanted]
