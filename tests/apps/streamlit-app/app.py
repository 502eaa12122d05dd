"""The Streamlit script the apps tests deploy with `rsconnect deploy streamlit`."""

import streamlit as st

st.title("Packyard Streamlit")
st.write("Hello from Streamlit, run by Packyard.")
