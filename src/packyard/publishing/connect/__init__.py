"""The Connect server API that rsconnect-python speaks (`/__api__/...`)."""
