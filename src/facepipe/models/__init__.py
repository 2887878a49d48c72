"""Model bundles, the repository of versions, online control (load, A/B) and conversion into bundles."""
