"""Observability service: platform events into ClickHouse, panels, drift."""
