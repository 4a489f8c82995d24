"""The Flower app of fed-assets: a ServerApp running FedAvg and a ClientApp per silo site."""
