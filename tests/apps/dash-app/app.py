"""The Dash app the apps tests deploy with `rsconnect deploy dash`: one callback, answered through the proxy."""

from dash import Dash, Input, Output, callback, dcc, html

app = Dash(__name__, title="Packyard Dash")
app.layout = html.Div([dcc.Input(id="name", value="packyard"), html.Div(id="greeting")])


@callback(Output("greeting", "children"), Input("name", "value"))
def greet(name: str) -> str:
    return f"Hello, {name}!"
