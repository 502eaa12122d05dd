"""An API whose import fails: the deploy must fail and say why."""

import fastapi
import this_module_does_not_exist  # noqa: F401

app = fastapi.FastAPI()
