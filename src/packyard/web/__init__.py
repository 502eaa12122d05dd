"""The web pages: server-rendered Jinja2 over the same domain code and permissions as the APIs."""
