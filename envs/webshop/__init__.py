"""A WebShop-style shop: a generated catalogue with ranked search."""
