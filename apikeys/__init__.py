"""Self-hosted API keys for Django: the domain, its services and the Management API."""
