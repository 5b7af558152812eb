"""The simulated APIs' deterministic backend: `ToolWorld`, one per episode.

Stateless functions answer from `envs.tools.data`; the calendar, the flights found so
far and the cart live in the world, built from the task's seed. Calls reach it already
validated against their `ToolSpec`; it raises `ToolError` for what a schema cannot
express (an unknown flight id, a product out of stock, an expression that does not parse).
"""

from __future__ import annotations

import ast
import datetime
import operator
from typing import Any

from envs.tools import data
from envs.tools.schema import ToolError

# ---- the calculator ----------------------------------------------------------------------
_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def evaluate(expression: str) -> float:
    """The value of an arithmetic expression (no names, no calls); `ToolError` says what failed."""
    if len(expression) > 200:
        raise ToolError("the expression is longer than 200 characters")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise ToolError(f"cannot parse the expression {expression!r}") from None

    def value(node: ast.AST) -> float:
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool)
        ):
            return node.value
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
                raise ToolError("the power is too large to compute")
            if isinstance(node.op, ast.Div) and right == 0:
                raise ToolError("division by zero")
            return _OPERATORS[type(node.op)](left, right)
        raise ToolError(
            f"the expression may hold only numbers, + - * / ** and parentheses; {ast.unparse(node)!r} is not allowed"
        )

    result = value(tree.body)
    if isinstance(result, complex):
        raise ToolError("the result is not a real number")
    return result


# ---- the backend -------------------------------------------------------------------------
class ToolWorld:
    """The state behind one episode's calls: calendar, flights found so far, cart.

    `execute(name, arguments)` runs a validated call and returns its JSON-able result.
    """

    def __init__(self, seed: str):
        self.seed = seed
        self.events: list[dict[str, Any]] = data.calendar_events(seed)
        self.found_flights: dict[str, dict[str, Any]] = {}
        self.cart: dict[str, int] = {}

    def execute(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return getattr(self, name)(**arguments)

    # Weather
    def get_weather(self, city: str, date: str, unit: str = "celsius") -> dict[str, Any]:
        day = data.weather(city, date)
        temperature = day["temperature_c"] if unit == "celsius" else data.to_fahrenheit(day["temperature_c"])
        return {
            "city": city,
            "date": date,
            "condition": day["condition"],
            "temperature": temperature,
            "unit": unit,
            "humidity_percent": day["humidity_percent"],
        }

    def get_forecast(self, city: str, start_date: str, days: int, unit: str = "celsius") -> dict[str, Any]:
        start = datetime.date.fromisoformat(start_date)
        daily = []
        for offset in range(days):
            date = (start + datetime.timedelta(days=offset)).isoformat()
            day = self.get_weather(city, date, unit)
            daily.append({"date": date, "condition": day["condition"], "temperature": day["temperature"]})
        return {"city": city, "unit": unit, "days": daily}

    # Currency
    def convert_currency(self, amount: float, from_currency: str, to_currency: str) -> dict[str, Any]:
        rate = data.exchange_rate(from_currency, to_currency)
        return {
            "amount": amount,
            "from_currency": from_currency,
            "to_currency": to_currency,
            "rate": rate,
            "converted_amount": round(amount * rate, 2),
        }

    def get_exchange_rate(self, base: str, target: str) -> dict[str, Any]:
        return {"base": base, "target": target, "rate": data.exchange_rate(base, target)}

    # Units
    def convert_units(self, value: float, from_unit: str, to_unit: str) -> dict[str, Any]:
        result = data.convert_unit(value, from_unit, to_unit)
        return {"value": value, "from_unit": from_unit, "to_unit": to_unit, "result": result}

    # Calendar
    def create_event(self, title: str, date: str, start_time: str, duration_minutes: int) -> dict[str, Any]:
        event = data.make_event(title, date, start_time, duration_minutes)
        conflicts = [
            e["event_id"]
            for e in self.events
            if e["date"] == date
            and e["start_time"] < event["end_time"]
            and event["start_time"] < e["end_time"]
        ]
        self.events.append(event)
        return {**event, "conflicts": conflicts}

    def list_events(self, date: str) -> dict[str, Any]:
        events = sorted((e for e in self.events if e["date"] == date), key=lambda e: e["start_time"])
        return {"date": date, "events": [dict(e) for e in events]}

    # Flights
    def search_flights(
        self, origin: str, destination: str, date: str, cabin: str = "economy"
    ) -> dict[str, Any]:
        found = data.flights(origin, destination, date, cabin)
        for flight in found:
            self.found_flights[flight["flight_id"]] = {
                **flight,
                "origin": origin,
                "destination": destination,
                "date": date,
                "cabin": cabin,
            }
        return {"origin": origin, "destination": destination, "date": date, "cabin": cabin, "flights": found}

    def book_flight(self, flight_id: str, passenger_name: str) -> dict[str, Any]:
        flight = self.found_flights.get(flight_id)
        if flight is None:
            known = ", ".join(self.found_flights) or "none yet"
            raise ToolError(
                f"no flight {flight_id!r} was returned by search_flights in this session (found: {known}); "
                "search first and book one of the flight_ids it returns"
            )
        return {
            "confirmation": data.code("flight", flight_id, flight["date"], passenger_name.strip().lower()),
            "flight_id": flight_id,
            "passenger_name": passenger_name,
            "origin": flight["origin"],
            "destination": flight["destination"],
            "date": flight["date"],
            "departure": flight["departure"],
            "price_usd": flight["price_usd"],
        }

    # Hotels
    def search_hotels(self, city: str, check_in: str, nights: int, min_stars: int = 1) -> dict[str, Any]:
        found = [
            {
                "hotel_id": hotel["hotel_id"],
                "name": hotel["name"],
                "stars": hotel["stars"],
                "price_per_night_usd": data.nightly_price(hotel, check_in),
            }
            for hotel in data.hotels(city)
            if hotel["stars"] >= min_stars
        ]
        return {"city": city, "check_in": check_in, "nights": nights, "hotels": found}

    def book_hotel(self, hotel_id: str, check_in: str, nights: int, guest_name: str) -> dict[str, Any]:
        match = data.hotel_by_id(hotel_id)
        if match is None:
            raise ToolError(
                f"there is no hotel with hotel_id {hotel_id!r}; use a hotel_id from search_hotels"
            )
        city, hotel = match
        price = data.nightly_price(hotel, check_in)
        return {
            "confirmation": data.code("hotel", hotel_id, check_in, nights, guest_name.strip().lower()),
            "hotel_id": hotel_id,
            "hotel": hotel["name"],
            "city": city,
            "check_in": check_in,
            "nights": nights,
            "guest_name": guest_name,
            "price_per_night_usd": price,
            "total_price_usd": round(price * nights, 2),
        }

    # Database
    def query_database(self, table: str, where_column: str, equals: str) -> dict[str, Any]:
        rows = [
            dict(r) for r in data.TABLES[table]() if str(r[where_column]).lower() == equals.strip().lower()
        ]
        return {"table": table, "rows": rows, "count": len(rows)}

    def aggregate_database(
        self,
        table: str,
        operation: str,
        column: str | None = None,
        where_column: str | None = None,
        equals: str | None = None,
    ) -> dict[str, Any]:
        rows = list(data.TABLES[table]())
        if where_column is not None:
            rows = [r for r in rows if str(r[where_column]).lower() == str(equals).strip().lower()]
        if operation == "count":
            value: float | None = len(rows)
        elif not rows:
            value = None
        else:
            numbers = [r[column] for r in rows]
            value = {
                "sum": lambda: round(sum(numbers), 2),
                "avg": lambda: round(sum(numbers) / len(numbers), 2),
                "min": lambda: min(numbers),
                "max": lambda: max(numbers),
            }[operation]()
        result = {"table": table, "operation": operation, "value": value, "rows_used": len(rows)}
        if column is not None:
            result["column"] = column
        return result

    # Calculator
    def calculate(self, expression: str) -> dict[str, Any]:
        result = evaluate(expression)
        return {"expression": expression, "result": round(result, 6) if isinstance(result, float) else result}

    # Maps
    def get_distance(self, origin: str, destination: str, unit: str = "km") -> dict[str, Any]:
        km = data.distance_km(origin, destination)
        distance = round(km if unit == "km" else km / 1609.344 * 1000, 1)
        return {"origin": origin, "destination": destination, "distance": distance, "unit": unit}

    # Shop
    def search_products(self, category: str, max_price_usd: float | None = None) -> dict[str, Any]:
        found = [
            {k: p[k] for k in ("product_id", "name", "price_usd", "stock")}
            for p in data.products()
            if p["category"] == category and (max_price_usd is None or p["price_usd"] <= max_price_usd)
        ]
        return {"category": category, "products": found}

    def add_to_cart(self, product_id: str, quantity: int) -> dict[str, Any]:
        product = next((p for p in data.products() if p["product_id"] == product_id), None)
        if product is None:
            raise ToolError(
                f"there is no product with product_id {product_id!r}; use one from search_products"
            )
        total = self.cart.get(product_id, 0) + quantity
        if total > product["stock"]:
            raise ToolError(f"only {product['stock']} of {product_id} in stock; the cart would hold {total}")
        self.cart[product_id] = total
        return {"added": {"product_id": product_id, "quantity": quantity}, **self.view_cart()}

    def view_cart(self) -> dict[str, Any]:
        catalogue = {p["product_id"]: p for p in data.products()}
        items = [
            {
                "product_id": pid,
                "name": catalogue[pid]["name"],
                "quantity": qty,
                "price_usd": catalogue[pid]["price_usd"],
                "subtotal_usd": round(catalogue[pid]["price_usd"] * qty, 2),
            }
            for pid, qty in self.cart.items()
        ]
        return {
            "items": items,
            "item_count": sum(self.cart.values()),
            "total_usd": round(sum(i["subtotal_usd"] for i in items), 2),
        }
