# LocalChat's entry script, run by PyScript once Pyodide is up. The app lives in the
# `localchat` package (unpacked from vendor/app/localchat.zip by pyscript.json); this
# only starts it. No long top-level await here: the app runs as a task.
import asyncio

from localchat.app import main

_app_task = asyncio.create_task(main())  # noqa: RUF006 (kept for the page's lifetime)
