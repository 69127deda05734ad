"""Demo data for the marketplace, one module per topic (each registers a `demo_seeder`)."""
