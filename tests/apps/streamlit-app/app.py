"""The Streamlit script the apps tests deploy with `rsconnect deploy streamlit`."""

import json

import streamlit as st

st.title("Packyard Streamlit")
st.write("Hello from Streamlit, run by Packyard.")
# What Connect's proxy, and Packyard's, tells an app about who is viewing it.
viewer = json.loads(st.context.headers.get("RStudio-Connect-Credentials") or "null")
if viewer:
    st.write(f"Viewing: {viewer['user']} ({', '.join(viewer['groups']) or 'no groups'})")
else:
    st.write("Viewing: anonymous")
