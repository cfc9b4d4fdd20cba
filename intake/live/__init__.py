"""Live updates for staff screens and front-desk boards.

``intake.live.notify`` (imported by the web app and the workers) wakes the live process
after a change is committed; the live process itself (``intake.live.server``, started by
``intake live`` and by ``intake serve``) is an asyncio server that holds every open
stream, so open screens never hold a thread of the web app. Nothing here is imported by
the web app or the workers but ``notify``: aiohttp stays out of their processes.
"""
