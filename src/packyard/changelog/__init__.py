"""The change log that every domain writes to and every cache follows; its event id is the serial."""
