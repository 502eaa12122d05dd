"""The Flask app the publishing tests deploy with `rsconnect deploy flask`."""

import os

from flask import Flask, url_for

app = Flask(__name__)


@app.get("/")
def root():
    return {"app": "flask", "greeting": os.environ.get("FLASK_ONLY"), "other": os.environ.get("GREETING")}


@app.get("/links")
def links():
    return {"self": url_for("links")}
