# The Shiny Express app the apps tests deploy with `rsconnect deploy shiny` (entry point
# `shiny.express.app:app_2e_py`): its output answers an input over the websocket. A comment, not a docstring:
# Shiny Express shows a bare string on the page.

from shiny import render
from shiny.express import input, ui

ui.input_text("name", "Name", "packyard")


@render.text
def greeting() -> str:
    return f"Hello, {input.name()}!"
