"""Page handlers, one module per group; ``portal.app`` lists their routes."""
