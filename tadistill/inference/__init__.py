"""Student sampling and TA scoring: backends, Ray Serve deployments, Ray Data drivers."""
