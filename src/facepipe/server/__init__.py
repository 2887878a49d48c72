"""Wiring: what is served, built from config; the server's lifecycle and ``worker_num`` processes."""
