"""Embedding service: turns chunks (from Kafka) and queries (over gRPC) into vectors."""
