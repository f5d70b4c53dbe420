"""Vector-store service: Weaviate with one Weaviate tenant per platform tenant."""
