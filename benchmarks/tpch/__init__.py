"""TPC-H across silos: data generation and placement, query variants, result comparison, peers."""
