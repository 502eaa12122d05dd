"""The Bokeh app the apps tests deploy with `rsconnect deploy bokeh`: one document with a text model."""

from bokeh.io import curdoc
from bokeh.models import Div

curdoc().add_root(Div(text="Hello from Bokeh, run by Packyard.", name="greeting"))
curdoc().title = "Packyard Bokeh"
