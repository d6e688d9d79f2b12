"""What the endpoints do, between the HTTP layer (api/) and the parts they use."""
