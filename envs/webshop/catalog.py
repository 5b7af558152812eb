"""The WebShop product catalogue, generated: deterministic from a seed, any size.

Seven departments, 56 product types (8 each); every product has a type, a brand, a
title, a price, 2 to 5 attributes drawn from its type's ("machine washable", "gluten
free"), options (size, colour, flavour, ...; 2 to 6 values each), features (bullet
points), a description and a rating. Words are shared within a department and types
share attributes, so that search has to rank: "gluten free protein bar" hits hundreds
of products, of which a few carry both attributes. `catalog(num_products, seed)` builds
a catalogue once per process and keeps the most recently used ones, up to
`MAX_CACHED_PRODUCTS` products in all.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from envs.caches import BoundedCache

DEFAULT_PRODUCTS = 5000
MAX_PRODUCTS = 20_000  # the largest catalogue a client may ask for (a few seconds, ~35 MB, ~50 MB of index)
MAX_CACHED_PRODUCTS = 25_000  # products kept per process: the default catalogue and one of the largest
ASIN_CHARS = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
PRICE_ENDINGS = (0.99, 0.99, 0.49, 0.95, 0.0)


@dataclass(frozen=True)
class ProductType:
    """What a product is: its name (the thing a shopper asks for), place and variants."""

    name: str
    path: tuple[str, ...]  # aisle > shelf under the department (WebShop's product_category)
    options: dict[str, tuple[str, ...]]  # option name -> every value products may offer
    price: tuple[float, float]
    attributes: tuple[str, ...]  # what products of the type may be ("machine washable")
    words: tuple[str, ...]  # descriptive words for titles and descriptions
    article: str  # "a", "an", "a pair of", "" (plural names)


@dataclass(frozen=True)
class Department:
    name: str
    words: tuple[str, ...]
    brand_heads: tuple[str, ...]
    brand_tails: tuple[str, ...]
    uses: tuple[str, ...]  # "for {use}" phrases of descriptions
    types: tuple[ProductType, ...] = field(default=())


@dataclass(frozen=True)
class Product:
    index: int
    asin: str
    department: str
    product_type: ProductType
    brand: str
    title: str
    price: float
    attributes: tuple[str, ...]
    options: dict[str, tuple[str, ...]]
    features: tuple[str, ...]
    description: str
    rating: float

    @property
    def category_path(self) -> tuple[str, ...]:
        return (self.department, *self.product_type.path)

    @property
    def category(self) -> str:
        return " › ".join(self.category_path)


@dataclass(frozen=True)
class Catalog:
    seed: int
    products: tuple[Product, ...]
    by_asin: dict[str, Product]

    def __len__(self) -> int:
        return len(self.products)


# ---- the vocabulary ----------------------------------------------------------------------
APPAREL_COLORS = (
    "black", "white", "navy", "heather gray", "red", "royal blue", "olive green", "beige",
    "burgundy", "pink", "khaki", "charcoal", "light blue", "purple",
)  # fmt: skip
APPAREL_SIZES = ("x-small", "small", "medium", "large", "x-large", "xx-large")
SHOE_SIZES = ("6", "6.5", "7", "7.5", "8", "8.5", "9", "9.5", "10", "10.5", "11", "12")
GADGET_COLORS = ("black", "white", "silver", "space gray", "rose gold", "midnight blue", "red", "green")
HOME_COLORS = (
    "ivory", "light gray", "dark gray", "navy blue", "sage green", "terracotta", "mustard yellow",
    "cream", "walnut", "teal", "blush pink", "black",
)  # fmt: skip
SNACK_FLAVORS = (
    "chocolate", "peanut butter", "sea salt", "vanilla", "strawberry", "cinnamon", "honey",
    "caramel", "mixed berry", "dark chocolate", "coconut", "almond", "lemon", "original",
)  # fmt: skip
SAVORY_FLAVORS = (
    "original",
    "teriyaki",
    "smoky barbecue",
    "sweet chili",
    "black pepper",
    "garlic",
    "jalapeno",
)
DRINK_FLAVORS = (
    "peppermint",
    "chamomile",
    "green tea",
    "earl grey",
    "ginger",
    "hibiscus",
    "lemon",
    "rooibos",
)
COUNTS = ("6 count", "12 count", "18 count", "24 count", "36 count")
PACKS = ("pack of 1", "pack of 2", "pack of 3", "pack of 4", "pack of 6")
OUNCES = ("4 ounce", "8 ounce", "12 ounce", "16 ounce", "32 ounce")
SCENTS = ("lavender", "unscented", "rose", "eucalyptus", "citrus", "coconut", "sandalwood", "fresh linen")
FLUID = ("1 fl oz", "1.7 fl oz", "3.4 fl oz", "8 fl oz", "16 fl oz")
SHADES = (
    "nude", "ruby red", "coral", "berry", "mauve", "classic red", "plum", "peach", "brown", "black",
    "taupe", "fuchsia",
)  # fmt: skip
BED_SIZES = ("twin", "twin xl", "full", "queen", "king", "california king")
PET_SIZES = ("small", "medium", "large", "x-large")
PET_FLAVORS = ("chicken", "salmon", "beef", "lamb", "turkey", "duck")
PIECES = ("set of 2", "set of 4", "set of 6")


def indefinite_article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def kind(
    name: str,
    shelf: tuple[str, str],
    price: tuple[float, float],
    options: dict[str, tuple[str, ...]],
    attributes: tuple[str, ...],
    words: tuple[str, ...],
    article: str | None = None,
) -> ProductType:
    article = indefinite_article(name) if article is None else article
    return ProductType(name, shelf, options, price, attributes, words, article)


CARE = ("machine washable", "hand wash", "tumble dry", "wrinkle free", "quick drying", "moisture wicking")
FITS = ("slim fit", "relaxed fit", "regular fit")
SKIN = (
    "paraben free", "cruelty free", "dermatologist tested", "hypoallergenic", "alcohol free", "oil free",
    "sensitive skin", "dry skin", "non comedogenic", "vegan formula",
)  # fmt: skip
MAKEUP = (
    "long lasting",
    "cruelty free",
    "paraben free",
    "highly pigmented",
    "easy to apply",
    "vegan formula",
)
FOOD = ("gluten free", "non gmo", "organic", "kosher", "vegan", "no artificial flavors", "plant based")
SNACK = (
    "sugar free", "low calorie", "keto friendly", "high protein", "dairy free", "individually wrapped",
    "low carb", "nut free", "whole grain", "low sodium",
)  # fmt: skip

DEPARTMENTS: tuple[Department, ...] = (
    Department(
        "Clothing, Shoes & Jewelry",
        words=("classic", "casual", "everyday", "vintage", "athletic", "soft", "cozy", "tailored", "premium"),
        brand_heads=("Urban", "Coast", "North", "Summit", "Maple", "Iron", "Velvet", "Harbor", "Alpine",
                     "Wild"),
        brand_tails=("Thread", "Outfitters", "Apparel", "& Co", "Wear", "Studio", "Denim", "Supply"),
        uses=("the gym", "work", "travel", "weekends", "the office", "outdoor adventures", "lounging"),
        types=(
            kind("t-shirt", ("Men", "Shirts"), (9, 35), {"color": APPAREL_COLORS, "size": APPAREL_SIZES},
                 CARE + FITS + ("cotton blend", "long sleeve", "short sleeve", "crew neck"),
                 ("graphic", "pocket", "heavyweight")),
            kind("hoodie", ("Men", "Sweatshirts"), (25, 70), {"color": APPAREL_COLORS, "size": APPAREL_SIZES},
                 CARE + FITS + ("cotton blend", "fleece lined", "drawstring hood", "kangaroo pocket"),
                 ("pullover", "zip up", "oversized")),
            kind("maxi dress", ("Women", "Dresses"), (22, 80),
                 {"color": APPAREL_COLORS, "size": APPAREL_SIZES},
                 CARE + ("short sleeve", "long sleeve", "v neck", "side pockets", "polyester spandex"),
                 ("floral", "boho", "flowy", "wrap")),
            kind("yoga pants", ("Women", "Activewear"), (18, 60),
                 {"color": APPAREL_COLORS, "size": APPAREL_SIZES},
                 CARE + ("high waist", "tummy control", "stretch fabric", "elastic waistband",
                         "polyester spandex"),
                 ("seamless", "squat proof", "butt lifting"), ""),
            kind("running shoes", ("Men", "Shoes"), (40, 140), {"color": APPAREL_COLORS, "size": SHOE_SIZES},
                 ("rubber sole", "arch support", "non slip", "memory foam", "lace up", "machine washable",
                  "wide toe box"),
                 ("mesh", "cushioned", "trail", "road"), "a pair of"),
            kind("rain jacket", ("Women", "Coats & Jackets"), (35, 150),
                 {"color": APPAREL_COLORS, "size": APPAREL_SIZES},
                 ("waterproof", "packable hood", "windproof", "zip pockets", "machine washable",
                  "quick drying"),
                 ("windbreaker", "hooded", "shell")),
            kind("polo shirt", ("Men", "Shirts"), (15, 55), {"color": APPAREL_COLORS, "size": APPAREL_SIZES},
                 CARE + FITS + ("short sleeve", "long sleeve", "pique knit", "cotton blend"),
                 ("golf", "performance", "collared")),
            kind("crew socks", ("Men", "Socks"), (8, 30), {"color": APPAREL_COLORS, "pack": PACKS},
                 ("machine washable", "moisture wicking", "cushioned sole", "reinforced heel",
                  "cotton blend", "arch support"),
                 ("ankle", "merino", "compression"), ""),
        ),
    ),
    Department(
        "Beauty & Personal Care",
        words=("gentle", "nourishing", "lightweight", "radiant", "hydrating", "silky", "refreshing",
               "luxurious"),
        brand_heads=("Luna", "Pure", "Bloom", "Glow", "Velour", "Aura", "Petal", "Coco", "Silk", "Bare"),
        brand_tails=("Beauty", "Botanics", "Labs", "Cosmetics", "Skin", "Naturals", "Studio"),
        uses=("daily use", "a night routine", "delicate complexions", "all skin types", "a natural look"),
        types=(
            kind("face moisturizer", ("Skin Care", "Face"), (9, 45), {"size": FLUID},
                 SKIN + ("fragrance free", "anti aging", "with hyaluronic acid", "travel size"),
                 ("daily", "whipped", "gel")),
            kind("shampoo", ("Hair Care", "Shampoo & Conditioner"), (6, 30), {"scent": SCENTS, "size": FLUID},
                 ("paraben free", "sulfate free", "cruelty free", "vegan formula", "color safe",
                  "for damaged hair", "travel size", "silicone free"),
                 ("volumizing", "clarifying", "moisture")),
            kind("lipstick", ("Makeup", "Lips"), (5, 28), {"color": SHADES},
                 MAKEUP + ("matte finish", "waterproof", "moisturizing"),
                 ("creamy", "velvet", "satin", "bold")),
            kind("nail polish", ("Makeup", "Nails"), (4, 18), {"color": SHADES},
                 MAKEUP + ("quick dry", "chip resistant", "non toxic"),
                 ("gel", "glossy", "shimmer")),
            kind("body lotion", ("Skin Care", "Body"), (6, 26), {"scent": SCENTS, "size": FLUID},
                 SKIN + ("with shea butter", "non greasy", "travel size"),
                 ("whipped", "daily", "intensive")),
            kind("eyeliner", ("Makeup", "Eyes"), (5, 22), {"color": SHADES},
                 MAKEUP + ("smudge proof", "waterproof", "sensitive eyes"),
                 ("liquid", "pencil", "precision")),
            kind("sunscreen", ("Skin Care", "Sun Care"), (8, 32), {"size": FLUID},
                 SKIN + ("fragrance free", "broad spectrum", "reef safe", "water resistant", "travel size"),
                 ("mineral", "sport", "sheer")),
            kind("makeup brush set", ("Tools & Accessories", "Brushes"), (9, 45),
                 {"color": GADGET_COLORS, "set": PIECES},
                 ("cruelty free", "synthetic bristles", "with storage case", "easy to clean",
                  "soft bristles", "travel size", "professional quality"),
                 ("kabuki", "blending", "contour")),
        ),
    ),
    Department(
        "Electronics",
        words=("compact", "smart", "slim", "rugged", "advanced", "universal", "certified", "durable"),
        brand_heads=("Volt", "Nexa", "Quantum", "Pixel", "Zen", "Apex", "Sonic", "Byte", "Nova", "Flux"),
        brand_tails=("Tech", "Electronics", "Audio", "Labs", "Digital", "Gear", "Systems"),
        uses=("home and office", "gaming", "travel", "streaming", "everyday carry", "working from home"),
        types=(
            kind("hdmi cable", ("Accessories", "Cables"), (6, 30),
                 {"length": ("3 ft", "6 ft", "10 ft", "15 ft", "25 ft")},
                 ("high speed", "gold plated", "braided cord", "ethernet support", "plug and play",
                  "heavy duty", "ultra hd", "aluminum alloy"),
                 ("4k", "8k", "premium")),
            kind("phone case", ("Cell Phones", "Cases"), (7, 35),
                 {"color": GADGET_COLORS, "model": ("iphone 13", "iphone 14", "iphone 15", "galaxy s23",
                                                    "pixel 8")},
                 ("shockproof", "wireless charging compatible", "slim profile", "raised edges",
                  "scratch resistant", "anti yellowing", "drop tested"),
                 ("clear", "leather", "wallet", "armor")),
            kind("wireless earbuds", ("Audio", "Headphones"), (20, 150), {"color": GADGET_COLORS},
                 ("noise cancelling", "long battery life", "touch control", "charging case",
                  "built in microphone", "fast charging", "usb c", "water resistant"),
                 ("sport", "in ear", "stereo", "true"), ""),
            kind("bluetooth speaker", ("Audio", "Speakers"), (20, 120), {"color": GADGET_COLORS},
                 ("waterproof", "deep bass", "long battery life", "portable", "built in microphone",
                  "usb c", "stereo pairing"),
                 ("outdoor", "party", "mini", "360 degree")),
            kind("usb flash drive", ("Computers", "Storage"), (6, 40),
                 {"capacity": ("32gb", "64gb", "128gb", "256gb", "512gb")},
                 ("high speed", "usb c", "metal casing", "keychain loop", "plug and play", "dual connector",
                  "shockproof"),
                 ("thumb", "swivel", "mini")),
            kind("power bank", ("Cell Phones", "Chargers"), (15, 70),
                 {"color": GADGET_COLORS, "capacity": ("5000mah", "10000mah", "20000mah", "26800mah")},
                 ("fast charging", "usb c", "led display", "portable", "slim profile", "dual output",
                  "airline approved"),
                 ("magnetic", "travel", "pocket")),
            kind("computer mouse", ("Computers", "Accessories"), (8, 60), {"color": GADGET_COLORS},
                 ("wireless", "ergonomic design", "silent click", "rechargeable", "plug and play", "usb c",
                  "adjustable dpi", "long battery life"),
                 ("optical", "vertical", "gaming")),
            kind("laptop sleeve", ("Computers", "Bags & Cases"), (10, 40),
                 {"color": GADGET_COLORS, "size": ("13 inch", "14 inch", "15.6 inch", "17 inch")},
                 ("water repellent", "padded lining", "shockproof", "slim profile", "accessory pocket",
                  "scratch resistant"),
                 ("neoprene", "felt", "briefcase")),
        ),
    ),
    Department(
        "Home & Kitchen",
        words=("elegant", "rustic", "minimalist", "decorative", "farmhouse", "contemporary", "sturdy",
               "cozy"),
        brand_heads=("Oak", "Nest", "Hearth", "Willow", "Birch", "Cedar", "Haven", "Linen", "Stone", "Ember"),
        brand_tails=("Home", "Living", "& Loom", "Goods", "Interiors", "House", "Decor"),
        uses=("family rooms", "reading nooks", "a dorm", "the kitchen", "small apartments", "guest rooms"),
        types=(
            kind("bed sheet set", ("Bedding", "Sheets"), (20, 90), {"color": HOME_COLORS, "size": BED_SIZES},
                 ("deep pocket", "breathable cotton", "machine washable", "wrinkle free", "fade resistant",
                  "hypoallergenic", "extra soft", "cooling"),
                 ("microfiber", "percale", "sateen")),
            kind("throw pillow cover", ("Decor", "Pillows"), (8, 30),
                 {"color": HOME_COLORS, "size": ("16x16 inch", "18x18 inch", "20x20 inch", "12x20 inch")},
                 ("hidden zipper", "machine washable", "fade resistant", "living room", "bedroom",
                  "double sided", "super soft"),
                 ("velvet", "boho", "textured")),
            kind("bath towel", ("Bath", "Towels"), (12, 50), {"color": HOME_COLORS, "set": PIECES},
                 ("highly absorbent", "quick dry", "machine washable", "fade resistant", "extra soft",
                  "lint free", "ring spun cotton"),
                 ("plush", "turkish", "waffle")),
            kind("storage ottoman", ("Furniture", "Living Room Furniture"), (30, 150), {"color": HOME_COLORS},
                 ("folding lid", "easy assembly", "space saving", "living room", "bedroom", "solid wood",
                  "faux leather", "mid century"),
                 ("tufted", "round", "bench")),
            kind("bar stool", ("Furniture", "Kitchen Furniture"), (40, 200),
                 {"color": HOME_COLORS, "set": PIECES},
                 ("swivel seat", "adjustable height", "easy assembly", "solid wood", "mid century",
                  "modern design", "faux leather", "footrest"),
                 ("counter height", "backless", "upholstered")),
            kind("table lamp", ("Lighting", "Lamps"), (18, 90), {"color": HOME_COLORS},
                 ("usb port", "dimmable", "touch control", "bedroom", "living room", "mid century",
                  "modern design", "energy efficient"),
                 ("bedside", "ceramic", "linen shade")),
            kind("area rug", ("Decor", "Rugs"), (30, 250),
                 {"color": HOME_COLORS, "size": ("3x5 ft", "5x7 ft", "8x10 ft", "9x12 ft")},
                 ("low pile", "non slip", "machine washable", "fade resistant", "living room", "bedroom",
                  "stain resistant", "modern design"),
                 ("shag", "oriental", "geometric")),
            kind("coffee mug", ("Kitchen & Dining", "Drinkware"), (8, 35),
                 {"color": HOME_COLORS, "capacity": ("12 oz", "16 oz", "20 oz")},
                 ("microwave safe", "dishwasher safe", "bpa free", "stainless steel", "leak proof",
                  "gift ready", "double wall"),
                 ("ceramic", "stoneware", "travel")),
        ),
    ),
    Department(
        "Grocery & Gourmet Food",
        words=("delicious", "crunchy", "wholesome", "savory", "gourmet", "artisan", "hearty", "fresh"),
        brand_heads=("Nutri", "Harvest", "Sunny", "Golden", "Nature's", "Happy", "Prairie", "Farm",
                     "Orchard", "Mountain"),
        brand_tails=("Valley", "Bites", "Fields", "Pantry", "Roots", "Grove", "Kitchen", "Provisions"),
        uses=("a quick breakfast", "lunch boxes", "road trips", "an afternoon snack", "the office",
              "after workouts"),
        types=(
            kind("snack pack", ("Snacks", "Snack Packs"), (8, 35), {"flavor": SNACK_FLAVORS, "size": COUNTS},
                 FOOD + SNACK,
                 ("variety", "mini", "bite sized")),
            kind("protein bar", ("Snacks", "Nutrition Bars"), (12, 45),
                 {"flavor": SNACK_FLAVORS, "size": COUNTS},
                 FOOD + SNACK + ("low sugar",),
                 ("chewy", "crispy", "layered")),
            kind("granola", ("Breakfast", "Cereal"), (5, 25), {"flavor": SNACK_FLAVORS, "size": OUNCES},
                 FOOD + ("high fiber", "whole grain", "low sugar", "dairy free", "nut free", "high protein"),
                 ("clusters", "ancient grain", "toasted")),
            kind("ground coffee", ("Beverages", "Coffee"), (8, 30),
                 {"roast": ("light roast", "medium roast", "dark roast", "espresso roast"), "size": OUNCES},
                 FOOD + ("fair trade", "single origin", "low acid", "small batch roasted", "keto friendly"),
                 ("arabica", "colombian", "bold")),
            kind("herbal tea", ("Beverages", "Tea"), (5, 25), {"flavor": DRINK_FLAVORS, "size": COUNTS},
                 FOOD + ("caffeine free", "sugar free", "individually wrapped", "fair trade", "low calorie"),
                 ("loose leaf", "bagged", "soothing")),
            kind("beef jerky", ("Snacks", "Jerky & Dried Meats"), (7, 40),
                 {"flavor": SAVORY_FLAVORS, "size": OUNCES},
                 ("gluten free", "non gmo", "high protein", "low carb", "keto friendly", "grass fed",
                  "low sodium", "sugar free", "no artificial flavors", "individually wrapped"),
                 ("thick cut", "tender", "smoked")),
            kind("trail mix", ("Snacks", "Nuts & Trail Mix"), (6, 30),
                 {"flavor": SNACK_FLAVORS, "size": OUNCES},
                 FOOD + SNACK + ("resealable bag",),
                 ("roasted", "sweet and salty", "energy")),
            kind("hot sauce", ("Pantry", "Condiments"), (4, 25), {"flavor": SAVORY_FLAVORS, "size": PACKS},
                 FOOD + ("small batch", "sugar free", "low sodium", "keto friendly", "low calorie"),
                 ("fiery", "tangy", "habanero")),
        ),
    ),
    Department(
        "Pet Supplies",
        words=("premium", "tasty", "comfy", "sturdy", "playful", "cheerful", "healthy", "rugged"),
        brand_heads=("Paws", "Happy", "Furry", "Tail", "Whisker", "Bark", "Cozy", "Buddy", "Loyal", "Fetch"),
        brand_tails=("Pets", "& Paws", "Companions", "Pet Co", "Friends", "Den"),
        uses=("puppies", "senior dogs", "adult cats", "active dogs", "everyday play", "training"),
        types=(
            kind("dog food", ("Dogs", "Food"), (12, 80),
                 {"flavor": PET_FLAVORS, "size": ("4 lb", "12 lb", "24 lb", "30 lb")},
                 ("grain free", "natural ingredients", "real meat first", "vet recommended", "high protein",
                  "made in usa", "for small dogs", "for large dogs", "no artificial preservatives"),
                 ("dry", "kibble", "recipe"), ""),
            kind("cat litter", ("Cats", "Litter"), (10, 40), {"size": ("10 lb", "20 lb", "40 lb")},
                 ("clumping", "low dust", "odor control", "flushable", "lightweight", "natural ingredients"),
                 ("clay", "pine", "tofu"), ""),
            kind("dog leash", ("Dogs", "Collars & Leashes"), (8, 35),
                 {"color": GADGET_COLORS, "length": ("4 ft", "5 ft", "6 ft", "10 ft")},
                 ("reflective stitching", "padded handle", "durable", "heavy duty", "for small dogs",
                  "for large dogs", "chew resistant"),
                 ("nylon", "rope", "retractable")),
            kind("dog bed", ("Dogs", "Beds"), (20, 120), {"color": HOME_COLORS, "size": PET_SIZES},
                 ("orthopedic foam", "removable cover", "machine washable", "non slip", "for small dogs",
                  "for large dogs", "waterproof liner", "calming"),
                 ("bolster", "donut", "plush")),
            kind("chew toy", ("Dogs", "Toys"), (5, 25), {"color": GADGET_COLORS, "size": PET_SIZES},
                 ("squeaky", "durable", "chew resistant", "non toxic", "for small dogs", "for large dogs",
                  "easy to clean", "floats in water"),
                 ("rubber", "rope", "treat dispensing")),
            kind("pet shampoo", ("Grooming", "Shampoos"), (7, 28), {"scent": SCENTS, "size": FLUID},
                 ("oatmeal formula", "tearless", "natural ingredients", "vet recommended", "ph balanced",
                  "paraben free", "made in usa"),
                 ("soothing", "deodorizing", "gentle")),
            kind("cat tree", ("Cats", "Furniture"), (35, 160), {"color": HOME_COLORS},
                 ("sisal scratching posts", "easy assembly", "for indoor cats", "stable base",
                  "removable cushions", "space saving", "plush covered"),
                 ("multi level", "condo", "tower")),
            kind("bird feeder", ("Birds", "Feeders"), (10, 50), {"color": GADGET_COLORS},
                 ("squirrel proof", "weatherproof", "easy to clean", "easy to fill", "durable",
                  "large capacity", "metal roof"),
                 ("hanging", "window", "tube")),
        ),
    ),
    Department(
        "Sports & Outdoors",
        words=("pro", "outdoor", "performance", "training", "compact", "rugged", "versatile", "all weather"),
        brand_heads=("Peak", "Trail", "Iron", "Ridge", "Summit", "Rapid", "Core", "Vertex", "Blaze", "Terra"),
        brand_tails=("Sports", "Outdoors", "Fitness", "Athletics", "Gear", "Expeditions"),
        uses=("home workouts", "camping", "hiking", "the gym", "pilates", "cycling", "team practice"),
        types=(
            kind("yoga mat", ("Exercise & Fitness", "Yoga"), (15, 70),
                 {"color": GADGET_COLORS, "thickness": ("4mm", "6mm", "8mm", "10mm")},
                 ("non slip", "carrying strap", "extra thick", "eco friendly", "lightweight",
                  "sweat resistant", "for beginners", "high density", "easy to clean"),
                 ("tpe", "cork", "eco")),
            kind("dumbbell set", ("Exercise & Fitness", "Strength Training"), (25, 200),
                 {"weight": ("5 lb", "10 lb", "15 lb", "20 lb", "25 lb")},
                 ("neoprene coated", "hex design", "non slip", "anti roll", "for beginners", "easy to grip",
                  "storage rack"),
                 ("rubber", "iron", "cast")),
            kind("camping tent", ("Camping & Hiking", "Tents"), (40, 250),
                 {"color": GADGET_COLORS, "capacity": ("2 person", "4 person", "6 person", "8 person")},
                 ("rainfly included", "instant setup", "waterproof", "lightweight", "easy to carry",
                  "mesh windows", "family size"),
                 ("dome", "backpacking", "cabin")),
            kind("water bottle", ("Camping & Hiking", "Hydration"), (10, 40),
                 {"color": GADGET_COLORS, "size": ("18 oz", "24 oz", "32 oz", "40 oz")},
                 ("leak proof", "double wall insulated", "bpa free", "dishwasher safe", "lightweight",
                  "straw lid", "keeps drinks cold"),
                 ("stainless", "wide mouth", "sports")),
            kind("resistance bands", ("Exercise & Fitness", "Accessories"), (9, 35),
                 {"set": ("set of 3", "set of 5", "set of 11")},
                 ("door anchor", "latex free", "for beginners", "portable", "anti snap", "non slip",
                  "easy to carry"),
                 ("loop", "tube", "stretch"), ""),
            kind("hiking backpack", ("Camping & Hiking", "Backpacks"), (30, 160),
                 {"color": GADGET_COLORS, "capacity": ("20l", "35l", "40l", "50l", "65l")},
                 ("rain cover", "hydration compatible", "lightweight", "waterproof", "breathable",
                  "adjustable", "large capacity"),
                 ("daypack", "trekking", "travel")),
            kind("bike helmet", ("Cycling", "Helmets"), (20, 110),
                 {"color": GADGET_COLORS, "size": PET_SIZES},
                 ("led light", "removable visor", "adjustable", "lightweight", "breathable",
                  "shock absorbing", "cpsc certified"),
                 ("road", "mountain", "urban")),
            kind("jump rope", ("Exercise & Fitness", "Cardio"), (6, 30), {"color": GADGET_COLORS},
                 ("tangle free", "ball bearings", "adjustable", "for beginners", "non slip", "lightweight",
                  "foam handles"),
                 ("speed", "weighted", "crossfit")),
        ),
    ),
)  # fmt: skip
PRODUCT_TYPES: tuple[tuple[Department, ProductType], ...] = tuple(
    (department, kind) for department in DEPARTMENTS for kind in department.types
)

FEATURE_LINES = (
    "{Attr}: {brand} builds every {name} for {use}, with {a_word} finish you will notice.",
    "{Attr} - {a_word} choice for {use}, tested by our team before it ships.",
    "{ATTR}: {word2} and dependable; enjoy it for {use} without a second thought.",
    "{Attr} | loved for {use}: {word} details, {word2} feel.",
)
DESCRIPTION_LINES = (
    "The {brand} {name} is {a_word} pick for {use}.",
    "Key features: {attrs}.",
    "Made for {use}, this {word} {name} comes with {attrs}.",
    "Looking for {a_word} {name}? Highlights include {attrs}; it is ready for {use}.",
    "Our customers love how {word} and {word2} it feels.",
    "Backed by {brand}'s satisfaction promise.",
)


# ---- generation --------------------------------------------------------------------------
def _asins(rng: random.Random, count: int) -> list[str]:
    seen: set[str] = set()
    asins = []
    while len(asins) < count:
        asin = "B0" + "".join(rng.choices(ASIN_CHARS, k=8))
        if asin not in seen:
            seen.add(asin)
            asins.append(asin)
    return asins


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _title_case(text: str) -> str:
    return " ".join(word[:1].upper() + word[1:] for word in text.split())


def _make_product(rng: random.Random, index: int, asin: str) -> Product:
    department, product_type = rng.choice(PRODUCT_TYPES)
    brand = f"{rng.choice(department.brand_heads)} {rng.choice(department.brand_tails)}"
    attributes = tuple(rng.sample(product_type.attributes, rng.randint(2, 5)))
    options = {}
    for name, values in product_type.options.items():
        chosen = set(rng.sample(values, rng.randint(2, min(6, len(values)))))
        options[name] = tuple(value for value in values if value in chosen)
    words = department.words + product_type.words
    style = rng.sample(product_type.words, 1) + rng.sample(department.words, 1)
    rng.shuffle(style)
    in_title = rng.sample(attributes, rng.randint(1, min(2, len(attributes))))
    title = f"{brand} {_title_case(' '.join(style))} {_title_case(product_type.name)}"
    title += ", " + ", ".join(_title_case(attribute) for attribute in in_title)
    if rng.random() < 0.4:
        title += f" for {_title_case(rng.choice(department.uses))}"
    low, high = product_type.price
    price = round(int(rng.uniform(low, high)) + rng.choice(PRICE_ENDINGS), 2)

    def fill(line: str, attribute: str = "") -> str:
        word = rng.choice(words)
        return line.format(
            Attr=_title_case(attribute),
            ATTR=attribute.upper(),
            attr=attribute,
            attrs=_join(rng.sample(attributes, min(2, len(attributes)))),
            brand=brand,
            name=product_type.name,
            use=rng.choice(department.uses),
            word=word,
            a_word=f"{indefinite_article(word)} {word}",
            word2=rng.choice(words),
        )

    features = tuple(fill(rng.choice(FEATURE_LINES), attribute) for attribute in attributes)
    description = " ".join(fill(line) for line in rng.sample(DESCRIPTION_LINES, 3))
    rating = round(rng.uniform(3.0, 5.0), 1)
    return Product(
        index,
        asin,
        department.name,
        product_type,
        brand,
        title,
        price,
        attributes,
        options,
        features,
        description,
        rating,
    )


def generate_catalog(num_products: int = DEFAULT_PRODUCTS, seed: int = 0) -> Catalog:
    """A fresh catalogue of `num_products` products; the same arguments give the same one."""
    if num_products < 1:
        raise ValueError(f"num_products must be positive, got {num_products}")
    rng = random.Random(seed)
    asins = _asins(rng, num_products)
    products = tuple(_make_product(rng, index, asin) for index, asin in enumerate(asins))
    return Catalog(seed, products, {product.asin: product for product in products})


CATALOGS: BoundedCache[Catalog] = BoundedCache(MAX_CACHED_PRODUCTS, weight=len)


def catalog(num_products: int = DEFAULT_PRODUCTS, seed: int = 0) -> Catalog:
    """The catalogue of `num_products` and `seed`, built once per process (while it stays in `CATALOGS`)."""
    return CATALOGS.get((num_products, seed), lambda: generate_catalog(num_products, seed))
