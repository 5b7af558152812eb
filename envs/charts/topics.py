"""The subjects charts are drawn about: topic types and their vocabulary (a data table).

A `TableTopic` gives labelled series (bars, lines, areas, pie, heatmap, radar, overlays,
subplots); `ScatterTopic`, `HistogramTopic` and `BoxTopic` the other chart kinds.
`envs.charts.synth` draws a chart's data from one of them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableTopic:
    """A subject for labelled series: `axis` names the labels, `series_noun` the series."""

    name: str
    metric: str
    unit: str
    axis: str
    labels: tuple[str, ...]
    series_noun: str
    series: tuple[str, ...]
    low: float
    high: float
    decimals: int = 1
    ordered: bool = False  # the labels are a sequence in time: trends make sense


@dataclass(frozen=True)
class ScatterTopic:
    name: str
    entity: str
    entities: tuple[str, ...]
    x_metric: str
    x_unit: str
    x_range: tuple[float, float]
    y_metric: str
    y_unit: str
    y_range: tuple[float, float]
    groups: tuple[str, ...]
    decimals: int = 1


@dataclass(frozen=True)
class HistogramTopic:
    name: str
    metric: str
    unit: str
    item: str
    low: float
    high: float
    width: float
    decimals: int = 0


@dataclass(frozen=True)
class BoxTopic:
    name: str
    metric: str
    unit: str
    group: str
    groups: tuple[str, ...]
    low: float
    high: float
    decimals: int = 1


# fmt: off
YEARS = tuple(str(year) for year in range(2012, 2025))
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
QUARTERS = tuple(f"Q{q} {y}" for y in (2021, 2022, 2023, 2024) for q in (1, 2, 3, 4))
WEEKS = tuple(f"Week {w}" for w in range(1, 13))
HOURS = tuple(f"{h}:00" for h in range(6, 21, 2))
COUNTRIES = ("Germany", "France", "Spain", "Italy", "Poland", "Sweden", "Japan", "Brazil", "Canada", "India",
             "Kenya", "Mexico")
CITIES = ("Lisbon", "Oslo", "Cairo", "Lima", "Seoul", "Dublin", "Madrid", "Nairobi", "Quito", "Perth", "Boston",
          "Delhi")
REGIONS = ("North", "South", "East", "West", "Central")
DEPARTMENTS = ("Sales", "R&D", "Support", "Marketing", "Finance", "HR", "Operations", "Legal")
BRANDS = ("Apex", "Nimbus", "Orion", "Vertex", "Zenith", "Lumen")
PLATFORMS = ("Flixo", "Vidly", "Showbox", "Reelz", "Streamr")
RECENT_YEARS = ("2020", "2021", "2022", "2023", "2024")
CRITERIA = ("Taste", "Service", "Price", "Ambience", "Cleanliness", "Speed", "Menu")
SKILLS = ("Speed", "Strength", "Stamina", "Agility", "Technique", "Tactics", "Focus")
SPECS = ("CPU", "GPU", "Memory", "Storage", "Battery", "Camera", "Display")

TABLE_TOPICS = (
    TableTopic("Renewable electricity generation", "Generation", "TWh", "country", COUNTRIES, "source",
               ("Solar", "Wind", "Hydro", "Biomass", "Geothermal"), 5, 150),
    TableTopic("Coffee shop sales", "Cups sold", "thousand", "month", MONTHS, "drink",
               ("Espresso", "Latte", "Cappuccino", "Mocha", "Americano"), 2, 40, ordered=True),
    TableTopic("Smartphone shipments", "Shipments", "million units", "quarter", QUARTERS, "brand",
               BRANDS, 10, 80, ordered=True),
    TableTopic("University enrolment", "Students", "thousand", "year", YEARS, "faculty",
               ("Engineering", "Medicine", "Law", "Arts", "Science"), 1, 30, ordered=True),
    TableTopic("Website traffic", "Visits", "thousand", "month", MONTHS, "channel",
               ("Search", "Social", "Direct", "Email", "Referral"), 5, 120, ordered=True),
    TableTopic("Crop yields", "Yield", "t/ha", "region", REGIONS, "crop",
               ("Wheat", "Maize", "Rice", "Barley", "Soybean"), 1, 12),
    TableTopic("Public transport ridership", "Passengers", "million trips", "year", YEARS, "mode",
               ("Bus", "Metro", "Tram", "Rail", "Ferry"), 2, 90, ordered=True),
    TableTopic("Hospital admissions", "Admissions", "patients", "month", MONTHS, "department",
               ("Cardiology", "Oncology", "Pediatrics", "Neurology", "Orthopedics"), 50, 400, 0, True),
    TableTopic("Online course completions", "Completions", "learners", "course",
               ("Python", "Statistics", "Design", "Marketing", "Finance", "Writing", "Spanish"), "year",
               RECENT_YEARS, 100, 900, 0),
    TableTopic("Household spending", "Spending", "USD per month", "category",
               ("Housing", "Food", "Transport", "Health", "Leisure", "Education", "Clothing"), "area",
               ("Urban", "Suburban", "Rural"), 50, 1500, 0),
    TableTopic("Air pollution (PM2.5)", "PM2.5", "µg/m³", "city", CITIES, "season",
               ("Winter", "Spring", "Summer", "Autumn"), 5, 80),
    TableTopic("Museum visitors", "Visitors", "thousand", "month", MONTHS, "venue",
               ("Art Museum", "Science Center", "History Museum", "Aquarium"), 10, 150, ordered=True),
    TableTopic("Electric vehicle sales", "Sales", "thousand units", "year", YEARS, "country",
               COUNTRIES[:8], 5, 400, ordered=True),
    TableTopic("Employee headcount", "Employees", "people", "department", DEPARTMENTS, "year",
               RECENT_YEARS, 10, 300, 0),
    TableTopic("Water use", "Consumption", "million m³", "quarter", QUARTERS, "sector",
               ("Households", "Industry", "Agriculture", "Services"), 20, 300, ordered=True),
    TableTopic("Box office revenue", "Revenue", "million USD", "genre",
               ("Action", "Comedy", "Drama", "Horror", "Animation", "Sci-Fi", "Documentary"), "year",
               RECENT_YEARS, 20, 900),
    TableTopic("Library loans", "Loans", "thousand", "genre",
               ("Fiction", "Biography", "History", "Science", "Children's", "Poetry"), "branch",
               ("Central", "Riverside", "Hillcrest", "Oakwood"), 1, 60),
    TableTopic("Cloud service revenue", "Revenue", "billion USD", "quarter", QUARTERS, "provider",
               ("Stratus", "Cirrus", "Altus", "Nimbo"), 1, 30, ordered=True),
    TableTopic("Bird sightings", "Sightings", "birds", "month", MONTHS, "species",
               ("Robin", "Sparrow", "Finch", "Heron", "Owl"), 5, 250, 0, True),
    TableTopic("Restaurant ratings", "Rating", "points", "criterion", CRITERIA, "restaurant",
               ("Bistro Blue", "Casa Verde", "Golden Wok", "Le Petit"), 1, 5),
    TableTopic("Smartphone benchmark scores", "Score", "points", "component", SPECS, "phone",
               BRANDS, 40, 100, 0),
    TableTopic("Athlete assessment", "Score", "points", "skill", SKILLS, "athlete",
               ("Ava", "Ben", "Chloe", "Dev", "Eli"), 50, 100, 0),
    TableTopic("Solar panel output", "Output", "kWh", "hour", HOURS, "roof",
               ("Roof A", "Roof B", "Roof C"), 0.5, 9, ordered=True),
    TableTopic("Fish catch", "Catch", "thousand tonnes", "year", YEARS, "species",
               ("Cod", "Herring", "Mackerel", "Tuna", "Salmon"), 5, 200, ordered=True),
    TableTopic("Broadband subscribers", "Subscribers", "million", "year", YEARS, "technology",
               ("Fiber", "Cable", "DSL", "Satellite", "Fixed 5G"), 0.5, 40, ordered=True),
    TableTopic("Warehouse shipments", "Shipments", "pallets", "day",
               ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), "warehouse",
               ("Hub North", "Hub South", "Hub East"), 100, 900, 0, True),
    TableTopic("Tourist arrivals", "Arrivals", "million", "year", YEARS, "region",
               ("Europe", "Asia", "Americas", "Africa", "Oceania"), 1, 80, ordered=True),
    TableTopic("Carbon emissions", "Emissions", "Mt CO2", "sector",
               ("Energy", "Transport", "Industry", "Buildings", "Agriculture", "Waste"), "country",
               COUNTRIES[:6], 5, 400),
    TableTopic("Streaming hours", "Hours watched", "million hours", "month", MONTHS, "platform",
               PLATFORMS, 20, 500, ordered=True),
    TableTopic("Monthly rainfall", "Rainfall", "mm", "month", MONTHS, "city", CITIES[:6], 5, 250,
               ordered=True),
    TableTopic("Game downloads", "Downloads", "thousand", "week", WEEKS, "platform",
               ("iOS", "Android", "PC", "Console"), 5, 120, ordered=True),
    TableTopic("Retail store revenue", "Revenue", "thousand USD", "store", CITIES, "product line",
               ("Apparel", "Electronics", "Home", "Toys", "Sports"), 20, 600),
    TableTopic("Energy use by building", "Energy use", "MWh", "building",
               ("Library", "Gym", "Lab A", "Lab B", "Dorm 1", "Dorm 2", "Cafeteria"), "utility",
               ("Electricity", "Heating", "Cooling", "Hot water"), 10, 250),
)
SCATTER_TOPICS = (
    ScatterTopic("Income and life expectancy", "country", COUNTRIES, "GDP per capita", "thousand USD",
                 (5, 70), "Life expectancy", "years", (62, 84), ("OECD", "non-OECD")),
    ScatterTopic("Engine power and fuel use", "car",
                 ("Falcon", "Comet", "Pulse", "Drift", "Nova", "Ridge", "Sable", "Tempo", "Vista", "Bolt",
                  "Atlas", "Cruz"),
                 "Power", "kW", (50, 250), "Fuel use", "l/100 km", (4, 14), ("Petrol", "Diesel", "Hybrid")),
    ScatterTopic("Study time and exam results", "student",
                 ("Ana", "Ben", "Caro", "Dan", "Eva", "Finn", "Gia", "Hugo", "Ivy", "Jon", "Kai", "Lea"),
                 "Study time", "hours per week", (1, 25), "Exam score", "points", (35, 98),
                 ("Morning class", "Evening class")),
    ScatterTopic("Price and rating of appliances", "product",
                 ("Kettle", "Toaster", "Blender", "Mixer", "Fan", "Heater", "Lamp", "Router", "Speaker",
                  "Camera", "Drone", "Tablet"),
                 "Price", "USD", (20, 400), "Rating", "stars", (2.0, 5.0), ("Budget", "Premium")),
    ScatterTopic("City size and rent", "city", CITIES, "Population", "million", (0.5, 12), "Median rent",
                 "USD per month", (400, 2600), ("Coastal", "Inland", "Highland")),
    ScatterTopic("Startup funding and staff", "startup",
                 ("Quanta", "Brightly", "Mosaic", "Tidal", "Kernel", "Sprout", "Helix", "Pylon", "Vireo", "Wren",
                  "Ember", "Lattice"),
                 "Funding", "million USD", (1, 120), "Staff", "people", (5, 400), ("Fintech", "Health", "Climate"),
                 0),
)
HISTOGRAM_TOPICS = (
    HistogramTopic("Exam scores", "Score", "points", "student", 30, 100, 10),
    HistogramTopic("Commute times", "Commute time", "minutes", "employee", 0, 80, 10),
    HistogramTopic("Daily step counts", "Steps", "thousand steps", "day", 0, 20, 2.5, 1),
    HistogramTopic("Patient ages", "Age", "years", "patient", 0, 90, 15),
    HistogramTopic("Package weights", "Weight", "kg", "package", 0, 30, 5, 1),
    HistogramTopic("Call durations", "Duration", "minutes", "call", 0, 40, 5, 1),
    HistogramTopic("House sizes", "Floor area", "m²", "house", 40, 200, 20),
    HistogramTopic("Battery lifetimes", "Lifetime", "hours", "battery", 4, 16, 2, 1),
)
BOX_TOPICS = (
    BoxTopic("Delivery times by courier", "Delivery time", "hours", "courier",
             ("SwiftGo", "ParcelPro", "QuickShip", "RoadRunner", "ExpressLine"), 12, 96, 0),
    BoxTopic("Salaries by department", "Salary", "thousand USD", "department", DEPARTMENTS, 35, 140),
    BoxTopic("Battery life by phone", "Battery life", "hours", "phone", BRANDS, 8, 30),
    BoxTopic("Reaction times by age group", "Reaction time", "ms", "age group",
             ("18-29", "30-44", "45-59", "60-74", "75+"), 180, 520, 0),
    BoxTopic("Exam scores by class", "Score", "points", "class",
             ("Class A", "Class B", "Class C", "Class D", "Class E"), 35, 100, 0),
    BoxTopic("House prices by district", "Price", "thousand USD", "district",
             ("Old Town", "Harbor", "Uptown", "Parkside", "Riverside"), 150, 900, 0),
    BoxTopic("Fuel efficiency by vehicle type", "Efficiency", "km/l", "vehicle type",
             ("Sedan", "SUV", "Hatchback", "Pickup", "Van"), 6, 25),
)
# fmt: on
